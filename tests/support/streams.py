"""Synthetic request streams for the canary gate (shipshape/gate.py): tests and bench/gate_bench.py.

A stream is `rate` requests per second split between the slots by `share`, each request failing with
its slot's error probability and answering slowly with its slow probability; the gate is polled every
`poll` seconds, as the watcher on a host polls the access log. Seeded, so every run is reproducible.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from shipshape.gate import Policy, Tally, judge


@dataclass(frozen=True)
class Slot:
    errors: float = 0.0     # probability a request fails
    slow: float = 0.0       # probability a request is answered over the latency bound


@dataclass(frozen=True)
class Outcome:
    action: str             # rollback | advance | undecided (the step's time ran out)
    seconds: float          # from the candidate's first request to the decision
    failed: int             # the candidate's failed requests by then
    requests: int           # the candidate's requests by then
    reason: str


def simulate(candidate: Slot, live: Slot, policy: Policy, seed: int, rate: float = 200.0, share: float = 0.1,
             poll: float = 0.25, limit: float = 60.0) -> Outcome:
    rng = random.Random(seed)
    c = l = Tally()
    elapsed, reason = 0.0, "time ran out"
    while elapsed < limit:
        elapsed += poll
        arrived = int(rate * poll)
        to_candidate = sum(rng.random() < share for _ in range(arrived))
        c = c + _answers(rng, to_candidate, candidate)
        l = l + _answers(rng, arrived - to_candidate, live)
        verdict = judge(c, l, policy, elapsed)
        if verdict.final:
            return Outcome(verdict.action, elapsed, c.errors, c.requests, verdict.reason)
        reason = verdict.reason
    return Outcome("undecided", elapsed, c.errors, c.requests, reason)


def _answers(rng: random.Random, count: int, slot: Slot) -> Tally:
    return Tally(count, sum(rng.random() < slot.errors for _ in range(count)),
                 sum(rng.random() < slot.slow for _ in range(count)))
