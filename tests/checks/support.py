"""Run `pytest checks/` as a user does (a subprocess with --junitxml) and read what each check did."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclass
class CheckRun:
    returncode: int
    outcomes: dict[str, str]   # "test_http::test_health" -> passed | failed | error | skipped
    checklist: str
    junit: str
    output: str
    seconds: float
    ssh_commands: int | None

    def failing(self) -> set[str]:
        return {name for name, outcome in self.outcomes.items() if outcome in ("failed", "error")}

    def with_outcome(self, outcome: str) -> set[str]:
        return {name for name, o in self.outcomes.items() if o == outcome}


def run_checks(tmp_path: Path, stack: str = "local", root: Path | None = None, *args: str) -> CheckRun:
    """`python -m pytest checks/ --stack STACK` from the repo; SHIPSHAPE_ROOT=root picks other stack files."""
    junit, checklist = tmp_path / "junit.xml", tmp_path / "CHECKLIST.md"
    env = {**os.environ, **({"SHIPSHAPE_ROOT": str(root)} if root else {})}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "checks/", "--stack", stack, "-p", "no:cacheprovider", "-q",
         f"--junitxml={junit}", f"--checklist={checklist}", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    seconds = time.monotonic() - started
    junit_text = junit.read_text() if junit.exists() else ""
    outcomes, ssh = parse_junit(junit_text) if junit_text else ({}, None)
    return CheckRun(proc.returncode, outcomes, checklist.read_text() if checklist.exists() else "",
                    junit_text, proc.stdout + proc.stderr, seconds, ssh)


def parse_junit(text: str) -> tuple[dict[str, str], int | None]:
    """Per-test outcomes keyed "module::test[param]", and the ssh_commands suite property."""
    tree = ET.fromstring(text)
    outcomes = {}
    for case in tree.iter("testcase"):
        name = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
        kinds = {child.tag for child in case}
        outcome = ("error" if "error" in kinds else "failed" if "failure" in kinds
                   else "skipped" if "skipped" in kinds else "passed")
        # A test failing in call and erroring in teardown appears twice: keep the worst.
        outcomes[name] = outcome if outcomes.get(name) in (None, "passed", "skipped") else outcomes[name]
    ssh = [p.get("value") for p in tree.iter("property") if p.get("name") == "ssh_commands"]
    return outcomes, int(ssh[0]) if ssh else None
