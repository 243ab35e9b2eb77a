"""Fixtures for driving `pytest checks/` against stacks built in a temporary project root."""
from __future__ import annotations

import shutil
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
from tests.e2e.conftest import local_stack  # noqa: F401  (the provisioned e2e stack; deployed below)
from tests.support.services import free_port

from .breaks import Answer
from .support import REPO, CheckRun, run_checks, variant_root


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
class Deployed:
    """The deployed local stack, a Runner on it, and the all-green run every break departs from."""

    stack: object
    layout: object
    runner: Runner
    baseline: CheckRun
    root: Path          # its project root (SHIPSHAPE_ROOT)

    def facts(self):
        return parse_facts(self.runner.run(facts_script(self.stack, self.layout)).stdout)

    def wait_ready(self, timeout: float = 40.0) -> None:
        """Poll readiness through nginx, as users reach the app, until it answers 200."""
        self.wait_for(Answer(self.stack.app.readiness_path, 200), timeout)

    def wait_for(self, answer: Answer, timeout: float = 40.0) -> None:
        """Poll `answer.path` through nginx until it answers `answer.status` with `answer.text` in the body."""
        url = f"http://{self.stack.host.address}:{self.stack.host.http_port}{answer.path}"
        deadline, last = time.monotonic() + timeout, "no answer"
        while time.monotonic() < deadline:
            try:
                response = requests.get(url, timeout=2)
                if response.status_code == answer.status and answer.text in response.text:
                    return
                last = f"{response.status_code} {response.text[:200]}"
            except requests.RequestException as error:
                last = type(error).__name__
            time.sleep(0.2)
        raise TimeoutError(f"{url} did not answer {answer.status} {answer.text!r} within {timeout}s (last: {last})")


def _deploy(local_stack, patience: float = 180.0) -> None:
    """`fab deploy`, waiting out another run's deploy lock (the e2e stack is shared by suites)."""
    # A new commit, so the deploy is not "nothing to do": deploys also (re)create the check accounts
    # with this session's passwords (each e2e session generates its own .secrets/local.env).
    local_stack.commit("checks: a release for the post-deploy checks")
    deadline = time.monotonic() + patience
    while True:
        done = local_stack.fab("deploy", "--stack", "local", check=False)
        if done.returncode == 0:
            return
        if "locked by" not in done.stderr + done.stdout or time.monotonic() > deadline:
            raise AssertionError(f"fab deploy failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        time.sleep(3)


@pytest.fixture(scope="session")
def deployed_stack(local_stack, tmp_path_factory):
    """The e2e local stack (tests/e2e: own root and ports on this host), deployed, every check passing."""
    root = local_stack.root
    stack = load_stack("local", root)
    baseline = run_checks(tmp_path_factory.mktemp("baseline"), "local", root)
    if baseline.failing():
        _deploy(local_stack)
        baseline = run_checks(tmp_path_factory.mktemp("baseline"), "local", root)
    assert not baseline.failing(), f"the deployed local stack fails checks before any break:\n{baseline.checklist}"
    runner = Runner(connect(stack.host, REPO))
    yield Deployed(stack, layout_for(stack), runner, baseline, root)
    runner.connection.close()


@pytest.fixture
def local_variant(tmp_path, deployed_stack):
    """Factory: variant_root of the deployed stack's root, in this test's tmp_path."""
    def make(checks: dict, secrets: dict[str, str] | None = None) -> Path:
        return variant_root(deployed_stack.root, tmp_path / "variant", checks, secrets)
    return make
