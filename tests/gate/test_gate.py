"""Pure: the canary's sequential gate (shipshape/gate.py) on synthetic, seeded request streams."""
from __future__ import annotations

import random

import pytest

from shipshape.gate import Policy, Tally, bounds, judge
from tests.support.streams import Slot, simulate

POLICY = Policy(confidence=0.95, tolerance=0.05, ceiling=0.05, min_requests=50, min_seconds=2.0)
GOOD = Slot()


def test_bounds_hold_at_every_moment_at_once_for_the_true_rate():
    # A confidence sequence: over whole streams, the true rate leaves the bounds at ANY step in at most
    # alpha of the runs (here 10%; checked every 5th request up to 400).
    alpha, runs, misses = 0.1, 150, 0
    for seed in range(runs):
        rng, p, hits = random.Random(seed), 0.2, 0
        for n in range(1, 401):
            hits += rng.random() < p
            if n % 5 == 0:
                low, high = bounds(hits, n, alpha)
                if not low <= p <= high:
                    misses += 1
                    break
    assert misses <= alpha * runs


@pytest.mark.parametrize("hits, n", [(0, 0), (0, 100), (6, 20), (100, 100), (10, 1000)])
def test_bounds_contain_the_estimate_and_narrow_with_data(hits, n):
    low, high = bounds(hits, n, 0.0125)
    assert 0.0 <= low <= (hits / n if n else 0.0) <= high <= 1.0
    if n:
        wider = bounds(hits * 10, n * 10, 0.0125)
        assert wider[1] - wider[0] < high - low


@pytest.mark.parametrize("candidate, within_s, most_failed", [
    (Slot(errors=0.30), 2.0, 10),    # the case (bench/gate_bench.py measures the 1.5 s target)
    (Slot(errors=1.00), 0.5, 10),
    (Slot(errors=0.05), 10.0, 20),
    (Slot(slow=0.30), 2.0, 0),       # a latency regression: slow answers, no errors
], ids=["30% errors", "100% errors", "5% errors", "30% slow"])
def test_bad_candidates_are_rolled_back(candidate, within_s, most_failed):
    for seed in range(20):
        outcome = simulate(candidate, GOOD, POLICY, seed)
        assert outcome.action == "rollback", outcome
        assert outcome.seconds <= within_s and outcome.failed <= most_failed, outcome


def test_a_good_candidate_advances_once_the_step_time_and_the_sample_are_in():
    for seed in range(20):
        outcome = simulate(GOOD, GOOD, POLICY, seed)
        assert outcome.action == "advance", outcome
        assert outcome.seconds >= POLICY.min_seconds and outcome.requests >= POLICY.min_requests
        assert "not worse by more than 5.0%" in outcome.reason


@pytest.mark.parametrize("rate", [0.0, 0.01, 0.03])
def test_identical_versions_roll_back_no_more_often_than_the_false_alarm_rate(rate):
    runs = 200
    outcomes = [simulate(Slot(errors=rate), Slot(errors=rate), POLICY, seed, limit=30) for seed in range(runs)]
    false_alarms = sum(o.action == "rollback" for o in outcomes)
    assert false_alarms <= (1 - POLICY.confidence) * runs, [o.reason for o in outcomes if o.action == "rollback"]


def test_zero_traffic_never_passes():
    outcome = simulate(GOOD, GOOD, POLICY, seed=1, rate=0.0, limit=30)
    assert outcome.action == "undecided" and "no request has reached the candidate" in outcome.reason


def test_too_few_requests_is_an_explicit_state_not_a_pass():
    outcome = simulate(GOOD, GOOD, POLICY, seed=1, rate=4.0, share=0.1, limit=30)  # ~0.4 req/s to the candidate
    assert outcome.action == "undecided" and "requests the candidate needs before it may advance" in outcome.reason


@pytest.mark.parametrize("candidate, live, elapsed, action, says", [
    (Tally(), Tally(100), 10.0, "more-data", "no request has reached the candidate"),
    (Tally(60), Tally(500), 1.0, "wait", "1.0s of the step's 2s"),
    (Tally(10, 10), Tally(90), 0.5, "rollback", "errors 100.0% of 10 vs live 0.0% of 90: worse"),
    (Tally(100, 20), Tally(0), 3.0, "rollback", "above the 5% ceiling"),   # nothing to compare with
    (Tally(300, 1), Tally(2700, 9), 3.0, "advance", "not worse by more than 5.0%"),
    (Tally(200, 0, 40), Tally(1800, 0, 0), 3.0, "rollback", "slow 20.0% of 200"),
    (Tally(60, 2), Tally(540, 1), 3.0, "more-data", "could be"),
])
def test_each_decision_says_why(candidate, live, elapsed, action, says):
    verdict = judge(candidate, live, POLICY, elapsed)
    assert (verdict.action, says in verdict.reason) == (action, True), verdict
