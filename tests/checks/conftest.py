"""Fixtures for driving `pytest checks/` against stacks built in a temporary project root."""
from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml

from shipshape.facts import facts_script, parse_facts
from shipshape.layout import layout_for
from shipshape.remote import Runner, connect
from shipshape.stackfile import load_stack
from tests.support.services import free_port

from .support import REPO, CheckRun, run_checks


@pytest.fixture
def project(tmp_path):
    """Factory: a temporary project root (SHIPSHAPE_ROOT) holding Pulumi.<name>.yaml and .secrets/<name>.env."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(REPO / "Pulumi.yaml", root / "Pulumi.yaml")

    def make(name: str, config: dict, secrets: dict[str, str] | None = None) -> Path:
        (root / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump({"config": config}))
        if secrets:
            (root / ".secrets").mkdir(exist_ok=True)
            (root / ".secrets" / f"{name}.env").write_text("".join(f"{k}={v}\n" for k, v in secrets.items()))
        return root

    return make


@pytest.fixture
def unused_port() -> int:
    return free_port()


@dataclass
class LocalStack:
    """The deployed local stack, a Runner on it, and the all-green run every break departs from."""

    stack: object
    layout: object
    runner: Runner
    baseline: CheckRun

    def facts(self):
        return parse_facts(self.runner.run(facts_script(self.stack, self.layout)).stdout)

    def wait_ready(self, timeout: float = 40.0) -> None:
        """Poll readiness through nginx, as users reach the app, until it answers 200."""
        url = f"http://{self.stack.host.address}:{self.stack.host.http_port}{self.stack.app.readiness_path}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(url, timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{url} not ready after {timeout}s")


def _fab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPO / ".venv" / "bin" / "fab"), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory):
    """The local stack deployed and passing every check; deploys it (fab setup + fab deploy) if needed."""
    stack = load_stack("local")
    baseline = run_checks(tmp_path_factory.mktemp("baseline"))
    if baseline.failing():
        if "deploy" not in _fab("--list").stdout:
            pytest.skip("`fab deploy` does not exist yet: no deployed local stack to break")
        # --allow-dirty: other work in progress may leave the tree dirty; the checks do not care.
        for task in (["setup"], ["deploy", "--allow-dirty"]):
            done = _fab(*task, "--stack", "local")
            assert done.returncode == 0, f"fab {task[0]} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        baseline = run_checks(tmp_path_factory.mktemp("baseline"))
    assert not baseline.failing(), f"the deployed local stack fails checks before any break:\n{baseline.checklist}"
    runner = Runner(connect(stack.host, REPO))
    yield LocalStack(stack, layout_for(stack), runner, baseline)
    runner.connection.close()


@pytest.fixture
def local_variant(tmp_path):
    """Factory: a project root whose Pulumi.local.yaml overrides shipshape:checks keys (same host, keys)."""
    def make(checks: dict) -> Path:
        root = tmp_path / "variant"
        root.mkdir()
        shutil.copy(REPO / "Pulumi.yaml", root / "Pulumi.yaml")
        document = yaml.safe_load((REPO / "Pulumi.local.yaml").read_text())
        document["config"]["shipshape:checks"] = {**document["config"].get("shipshape:checks", {}), **checks}
        (root / "Pulumi.local.yaml").write_text(yaml.safe_dump(document))
        for shared in (".local", ".secrets"):
            (root / shared).symlink_to(REPO / shared)
        return root
    return make
