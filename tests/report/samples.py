"""Sample deploy entries with reports, for the report's tests and the Cloud Run history's."""
from __future__ import annotations

from shipshape import report
from shipshape.gate import Step, Tally
from shipshape.history import Entry


def timeline(reads: int, start=(0, 0, 0, 0)) -> tuple:
    """`reads` reads 0.25 s apart: the candidate gets 10 requests a read, live 90, one live error in all."""
    c0, ce, l0, le = start
    return tuple((0.25 * i, c0 + 10 * i, ce, 0, l0 + 90 * i, le + (i > 2), 0) for i in range(reads))


def step(action: str, reads: int, start=(0, 0, 0, 0), reason="not worse") -> Step:
    rows = timeline(reads, start)
    last = rows[-1]
    return Step(action, reason, Tally(*last[1:4]), Tally(*last[4:7]), rows[-1][0], 3, rows)


def entry(outcome: str, steps: list, reason=None, step_name=None) -> Entry:
    phases = [report.phase(name, start, seconds, "ok") for name, start, seconds in
              (("upload", 0.0, 0.3), ("prepare", 0.3, 1.2), ("backup", 1.5, 0.4), ("migrate", 1.9, 2.1),
               ("start", 4.0, 1.5))]
    phases.append(report.phase("canary", 5.5, None if outcome == "success" else 9.0,
                               "ok" if outcome == "success" else "failed"))
    recorded, at = [], 5.5
    for percent, result in steps:
        recorded.append(report.canary_step(percent, result, report.step_start(phases, recorded), at + 3.0))
        at += 3.0
    if outcome == "success":
        phases.append(report.phase("promote", at))
    return Entry("20261121120000-abcdef123456", "abcdef1234567890", "alice@laptop", 1e9, 1e9 + at + 1, outcome,
                 step=step_name, reason=reason, report=report.build(phases, recorded))


SUCCESS = lambda: entry("success", [(10, step("advance", 9)), (50, step("advance", 5, (80, 0, 720, 1))),  # noqa: E731
                                    (100, step("advance", 200, (120, 0, 1080, 2)))])
ROLLBACK = lambda: entry("rolled_back", [(10, step("advance", 9)),  # noqa: E731
                                         (50, step("rollback", 6, (80, 0, 720, 1), "errors 30.0% of 130 | worse"))],
                         reason="at 50%: errors 30.0% worse", step_name="canary")
