"""Benchmark: the sequential canary gate (shipshape/gate.py) vs today's fixed-bake gate, side by side.

    .venv/bin/python bench/gate_bench.py [--rate 200] [--share 0.1] [--bake 2] [--seeds 20]

Measured on synthetic, seeded request streams (tests/support/streams.py): `rate` requests per second,
`share` of them to the candidate (the first canary step), the gate read every 0.25 s as the watcher
reads the access log. For 30%, 5% and 100% error candidates: seconds from the candidate's first request
to the decision, and the candidate's failed requests by then (median and worst of the seeds). For good
releases: false rollbacks. The fixed-bake gate is today's: one read after `bake` seconds, rollback when
the step's error rate is above 5%. Not measured here: the switch back to the live slot (0.5 s on the
local stack, bench/deploy_bench.py), which adds to both gates alike. The same figures from a real
deploy under load come once the gate is wired into `fab deploy` (#12).
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shipshape.gate import Policy  # noqa: E402
from tests.support.streams import Outcome, Slot, simulate  # noqa: E402

CASES = {"30% errors": Slot(errors=0.30), "5% errors": Slot(errors=0.05), "100% errors": Slot(errors=1.0)}


def fixed_bake(candidate: Slot, seed: int, rate: float, share: float, bake: float, ceiling: float = 0.05) -> Outcome:
    """Today's gate at the first step: bake, then one read of the candidate's error rate."""
    rng = random.Random(seed)
    requests = sum(rng.random() < share for _ in range(int(rate * bake)))
    failed = sum(rng.random() < candidate.errors for _ in range(requests))
    action = "rollback" if requests and failed / requests > ceiling else "advance"
    return Outcome(action, bake, failed, requests, "fixed bake")


def summary(outcomes: list[Outcome]) -> str:
    rolled = [o for o in outcomes if o.action == "rollback"]
    if not rolled:
        return f"rolled back 0/{len(outcomes)}"
    seconds, failed = [o.seconds for o in rolled], [o.failed for o in rolled]
    return (f"rolled back {len(rolled)}/{len(outcomes)}; {statistics.median(seconds):.2f} s median, "
            f"{max(seconds):.2f} s worst; failed requests {statistics.median(failed):.0f} median, {max(failed)} worst")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--share", type=float, default=0.1)
    parser.add_argument("--bake", type=float, default=2.0, help="the step's minimum time (canary.interval)")
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args()
    policy = Policy(min_seconds=args.bake)
    print(f"# canary gate at {args.rate:g} req/s, {args.share:.0%} to the candidate, bake {args.bake:g} s, "
          f"{args.seeds} seeded runs each; sequential: {policy}")
    for name, slot in CASES.items():
        print(f"{name:>12}  fixed bake: {summary([fixed_bake(slot, s, args.rate, args.share, args.bake) for s in range(args.seeds)])}")
        print(f"{'':>12}  sequential: {summary([simulate(slot, Slot(), policy, s, args.rate, args.share) for s in range(args.seeds)])}")
    good = [simulate(Slot(), Slot(), policy, s, args.rate, args.share) for s in range(args.seeds)]
    advanced = [o.seconds for o in good if o.action == "advance"]
    print(f"{'good':>12}  fixed bake: false rollbacks 0/{args.seeds}, advances after {args.bake:g} s")
    print(f"{'':>12}  sequential: false rollbacks {sum(o.action == 'rollback' for o in good)}/{args.seeds}, advances "
          f"after {statistics.median(advanced):.2f} s median, {max(advanced):.2f} s worst "
          f"(min {policy.min_requests} requests, within {policy.tolerance:.0%} of live)")


if __name__ == "__main__":
    main()
