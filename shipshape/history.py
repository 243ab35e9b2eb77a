"""The audit history on the host: one JSON line per deploy or rollback, and the DORA figures from it.

    runner.run(record_command(layout, Entry(...), secrets=runner.secrets))
    entries = parse(runner.run(read_command(layout)).stdout)
    metrics(entries, now=time.time())     # lead time, deploy frequency, change failure rate, time to restore

The file is append-only (`>>` of one short line is a single write with O_APPEND, so concurrent
writers never interleave); a torn or foreign line is skipped when read rather than hiding the rest.
"""
from __future__ import annotations

import json
import shlex
import statistics
from dataclasses import asdict, dataclass, fields

from shipshape.layout import Layout
from shipshape.remote import Command, Script
from shipshape.secrets import mask

OUTCOMES = ("success", "failed", "rolled_back")
KINDS = ("deploy", "rollback")
DAY = 86400.0


@dataclass(frozen=True)
class Entry:
    """One deploy or rollback. Times are epoch seconds; `committed` is the commit time of `git_sha`."""

    release: str
    git_sha: str
    who: str
    started: float
    finished: float
    outcome: str
    kind: str = "deploy"
    step: str | None = None
    reason: str | None = None
    committed: float | None = None
    report: dict | None = None    # a deploy's phases and canary steps (shipshape/report.py); None before

    def __post_init__(self):
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome {self.outcome!r}: expected one of {', '.join(OUTCOMES)}")
        if self.kind not in KINDS:
            raise ValueError(f"kind {self.kind!r}: expected one of {', '.join(KINDS)}")

    @property
    def duration_s(self) -> float:
        return round(self.finished - self.started, 3)

    @property
    def failed(self) -> bool:
        return self.outcome != "success"


@dataclass(frozen=True)
class Metrics:
    """The four DORA figures over `window_days`; None where there is nothing to measure yet."""

    window_days: float
    deploys: int
    lead_time_s: float | None
    deploys_per_day: float
    change_failure_rate: float | None
    time_to_restore_s: float | None


def to_json(entry: Entry, secrets=()) -> str:
    """One line; `reason` (free text from an error) is masked again in case a secret slipped in."""
    data = {**asdict(entry), "duration_s": entry.duration_s}
    if entry.report is None:
        del data["report"]  # rollbacks, and lines as they were before reports
    if entry.reason:
        data["reason"] = mask(entry.reason, secrets).replace("\n", " ")[:500]
    return json.dumps(data, sort_keys=True)


def record_command(layout: Layout, entry: Entry, secrets=()) -> Command:
    """Append the entry as one line to the history file."""
    return Script(f"mkdir -p {shlex.quote(layout.state)} && "
                  f"printf '%s\\n' {shlex.quote(to_json(entry, secrets))} >> {shlex.quote(layout.history_file)}")


def read_command(layout: Layout) -> Command:
    """Print the whole history (nothing when there is none yet)."""
    path = shlex.quote(layout.history_file)
    return Script(f"if [ -e {path} ]; then cat {path}; fi")


def parse(stdout: str) -> list[Entry]:
    """Entries in file order; lines that are not a valid entry are skipped."""
    names = {f.name for f in fields(Entry)}
    entries = []
    for line in stdout.splitlines():
        try:
            data = json.loads(line)
            entries.append(Entry(**{k: v for k, v in data.items() if k in names}))
        except (ValueError, TypeError):
            continue
    return entries


def metrics(entries: list[Entry], now: float, window_days: float = 30.0) -> Metrics:
    """DORA figures for the entries that started within `window_days` before `now`."""
    recent = sorted((e for e in entries if now - window_days * DAY <= e.started <= now),
                    key=lambda e: e.started)
    deploys = [e for e in recent if e.kind == "deploy"]
    shipped = [e for e in deploys if not e.failed]
    failed = failed_changes(recent)
    lead_times = [e.finished - e.committed for e in shipped if e.committed is not None]
    return Metrics(
        window_days=window_days,
        deploys=len(deploys),
        lead_time_s=_median(lead_times),
        deploys_per_day=round(len(shipped) / window_days, 3),
        change_failure_rate=round(len(failed) / len(deploys), 3) if deploys else None,
        time_to_restore_s=_median(restore_times(recent)),
    )


def failed_changes(entries: list[Entry]) -> list[Entry]:
    """Deploys that failed, were rolled back by the canary, or were undone by a later `fab rollback`."""
    failed, last_shipped = [], None
    for entry in entries:
        if entry.kind == "deploy" and entry.failed:
            failed.append(entry)
        elif entry.kind == "deploy":
            last_shipped = entry
        elif entry.kind == "rollback" and last_shipped is not None:
            failed.append(last_shipped)  # a rollback says the release before it was bad
            last_shipped = None
    return failed


def restore_times(entries: list[Entry]) -> list[float]:
    """For each incident, seconds from the failure to the next success (one streak = one incident)."""
    times, down_since, last_shipped = [], None, None
    for entry in entries:
        if entry.failed and entry.kind == "deploy":
            down_since = entry.finished if down_since is None else down_since
        elif entry.kind == "rollback" and not entry.failed:
            since = down_since if down_since is not None else (last_shipped.finished if last_shipped else None)
            if since is not None:
                times.append(entry.finished - since)
            down_since, last_shipped = None, None
        elif not entry.failed:
            if down_since is not None:
                times.append(entry.finished - down_since)
            down_since, last_shipped = None, entry
    return times


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None
