"""The checklist reporter: a pytest plugin that writes CHECKLIST.md from the run's reports.

Tests never write the checklist; they record `target` and `detail` (see the `check` fixture) and
assert. This plugin (the idea of testinfra's NagiosReporter) turns every report into a row: result,
check, target, detail and time, grouped by area (each test module's AREA), summary line on top.
Every secret value the run read is masked before anything is written.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from shipshape.secrets import mask

SECRETS = pytest.StashKey()
ICONS = {"passed": "PASS", "failed": "FAIL", "error": "ERROR", "skipped": "SKIP"}


@dataclass
class Row:
    area: str
    title: str
    outcome: str = "passed"
    target: str = ""
    detail: str = ""
    seconds: float = 0.0


def title_of(item) -> str:
    """The test's docstring line, with its parameters filled in ({role}, {module})."""
    doc = (getattr(item, "obj", None).__doc__ or item.name).strip().splitlines()[0]
    params = getattr(getattr(item, "callspec", None), "params", {})
    try:
        return doc.format(**params)
    except (KeyError, IndexError):
        return doc


def reason_of(report) -> str:
    """One readable line for a failure or a skip."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):  # skips: (file, line, "Skipped: reason")
        return longrepr[2].removeprefix("Skipped: ")
    crash = getattr(longrepr, "reprcrash", None)
    text = crash.message if crash else str(longrepr)
    text = text.removeprefix("AssertionError: ").removeprefix("Failed: ")
    return " ".join(text.split("\nassert ")[0].split())[:300]


class ChecklistReporter:
    def __init__(self, config, path: str, stack):
        self.config, self.path, self.stack = config, Path(path), stack
        self.rows: dict[str, Row] = {}
        self.started = time.time()

    def pytest_collection_modifyitems(self, items):
        # Areas in the order a person reads them (each module's ORDER): HTTP first, host last.
        items.sort(key=lambda item: getattr(getattr(item, "module", None), "ORDER", 99))
        for item in items:
            area = getattr(getattr(item, "module", None), "AREA", item.nodeid.split("::")[0])
            self.rows[item.nodeid] = Row(area, title_of(item))

    def pytest_runtest_logreport(self, report):
        row = self.rows.setdefault(report.nodeid, Row("Other", report.nodeid))
        row.seconds += report.duration
        props = dict(report.user_properties)
        row.target = props.get("target", row.target)
        if report.when == "call" or report.outcome != "passed":
            row.detail = props.get("detail", row.detail) if report.passed else reason_of(report)
        if report.failed:
            row.outcome = "failed" if report.when == "call" else "error"
        elif report.skipped and row.outcome == "passed":
            row.outcome = "skipped"

    def pytest_sessionfinish(self, session):
        if self.rows:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            text = mask(render(self.rows.values(), self.stack.name, time.time() - self.started),
                        self.config.stash.get(SECRETS, []))
            self.path.write_text(text)

    def pytest_terminal_summary(self, terminalreporter):
        terminalreporter.write_line(f"checklist: {self.path}")


def summary(rows) -> str:
    counts = {o: sum(r.outcome == o for r in rows) for o in ICONS}
    verdict = "FAIL" if counts["failed"] or counts["error"] else "PASS"
    return f"**{verdict}**: " + ", ".join(f"{n} {o}" for o, n in counts.items() if n)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(rows, stack_name: str, seconds: float) -> str:
    """The checklist as Markdown: a summary line, then one table per area."""
    rows = list(rows)
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    lines = [f"# Post-deploy checklist: stack `{stack_name}`", "",
             f"{summary(rows)} in {seconds:.1f} s ({when})", ""]
    for area in dict.fromkeys(r.area for r in rows):
        lines += [f"## {area}", "", "| Result | Check | Target | Detail | Time |", "| --- | --- | --- | --- | --- |"]
        lines += [f"| {ICONS[r.outcome]} | {_cell(r.title)} | {_cell(r.target)} | {_cell(r.detail)} | "
                  f"{r.seconds * 1000:.0f} ms |" for r in rows if r.area == area]
        lines.append("")
    return "\n".join(lines)
