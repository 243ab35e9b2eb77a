"""Run `pytest checks/` as a user does (a subprocess with --junitxml) and read what each check did."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import yaml

from shipshape.secrets import read_secrets_file

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

    def assert_fails_only(self, fails: set, also: tuple = (), baseline: "CheckRun | None" = None,
                          label: str = "") -> None:
        """`fails` failed, nothing else did but checks named by the `also` prefixes, every check that
        passed in `baseline` but those still passes, and the run exited 1."""
        assert fails <= self.failing(), f"{label}expected {sorted(fails)} to fail:\n{self.checklist}"
        unexpected = {n for n in self.failing() - fails if not n.startswith(also)}
        assert not unexpected, f"{label}also failed {sorted(unexpected)}:\n{self.checklist}"
        if baseline:
            lost = {n for n in baseline.with_outcome("passed") - self.with_outcome("passed")
                    if n not in fails and not n.startswith(also)}
            assert not lost, f"{label}checks that passed before no longer pass: {sorted(lost)}"
        assert self.returncode == 1


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


def variant_root(source: Path, root: Path, checks: dict | None = None, secrets: dict[str, str] | None = None,
                 config: dict | None = None) -> Path:
    """A project root like `source` (same host, SSH keys) whose Pulumi.local.yaml overrides
    shipshape:checks keys and other `config` keys, and whose .secrets/local.env overrides some values."""
    root.mkdir()
    shutil.copy(source / "Pulumi.yaml", root / "Pulumi.yaml")
    document = yaml.safe_load((source / "Pulumi.local.yaml").read_text())
    document["config"].update(config or {})
    document["config"]["shipshape:checks"] = {**document["config"].get("shipshape:checks", {}), **(checks or {})}
    (root / "Pulumi.local.yaml").write_text(yaml.safe_dump(document))
    (root / ".local").symlink_to(source / ".local")
    _copy_secrets(source / ".secrets" / "local.env", root / ".secrets" / "local.env", secrets or {})
    return root


def _copy_secrets(source: Path, target: Path, overrides: dict[str, str]) -> None:
    """A copy of a KEY=value secrets file with `overrides` replacing (or adding) keys, mode 600."""
    values = read_secrets_file(source)
    target.parent.mkdir(mode=0o700)
    target.touch(mode=0o600)  # created private before any secret is written into it
    target.write_text("".join(f"{key}={value}\n" for key, value in {**values, **overrides}.items()))
