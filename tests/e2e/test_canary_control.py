"""A person in the canary's loop, end to end on the real local stack: `fab deploy --pause-at` held at a step
while a second process runs `fab canary status`, then `promote` (the release ships) or `abort` (undone)."""
from __future__ import annotations

import json
import queue
import threading
import time

import pytest

from tests.e2e.conftest import ROOT, Load, host_sh, http

pytestmark = pytest.mark.timeout(300)


def served_sha(stack) -> str:
    status, body = stack.http("/version")
    assert status == 200, body
    return json.loads(body)["git_sha"]


class Running:
    """A `fab deploy` in the background whose output lines can be waited for."""

    def __init__(self, stack, *args):
        self.proc, self.lines, self.seen = stack.popen(*args), queue.Queue(), []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.seen.append(self.lines.get(timeout=0.5))
            except queue.Empty:
                continue
            if text in self.seen[-1]:
                return
        raise AssertionError(f"{text!r} not seen within {timeout}s:\n{''.join(self.seen)}")

    def finish(self, timeout: float = 120) -> tuple[int, str]:
        code = self.proc.wait(timeout=timeout)
        time.sleep(0.2)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return code, "".join(self.seen)


def test_nothing_to_steer_without_a_paused_deploy(local_stack):
    refused = local_stack.fab("canary", "promote", check=False)
    assert refused.returncode == 2 and "no deploy is in its canary" in refused.stderr, refused.stderr
    wrong = local_stack.fab("deploy", "--pause-at", "30", check=False)
    assert wrong.returncode == 2 and "expected one of the canary steps below 100" in wrong.stderr, wrong.stderr


def test_paused_deploy_shows_its_figures_and_ships_on_promote(local_stack):
    local_stack.fab("deploy")  # a live release to compare with (nothing to do if one serves already)
    sha = local_stack.commit("e2e: paused then promoted")
    with Load(get=lambda path: http(path, site=local_stack.site)) as load:
        deploy = Running(local_stack, "deploy", "--pause-at", "10")
        deploy.wait_for("paused at 10%")
        shown = local_stack.fab("canary", "status")
        assert "paused at 10%" in shown.stdout and "candidate" in shown.stdout and "live" in shown.stdout, shown.stdout
        assert "requests, errors" in shown.stdout and "gate: " in shown.stdout, shown.stdout
        held = json.loads(host_sh(f"cat {ROOT}/state/lock"))
        assert (held["paused"], held["step"], held["canary"]["percent"]) == (10, "canary", 10), held
        promoted = local_stack.fab("canary", "promote")
        assert "promote: taken by the deploy" in promoted.stdout, promoted.stdout
        code, out = deploy.finish()
    assert code == 0, out
    assert "promote by root@" in out and "all traffic on the candidate" in out, out
    assert "50%" not in out  # promoted by hand: the remaining steps were skipped
    assert served_sha(local_stack) == sha
    assert all(status == 200 for status, _ in load.results), [s for s, _ in load.results if s != 200]


def test_abort_while_paused_undoes_as_a_failed_step(local_stack):
    before = served_sha(local_stack)
    local_stack.commit("e2e: paused then aborted")
    deploy = Running(local_stack, "deploy", "--pause-at", "10")
    deploy.wait_for("paused at 10%")
    assert "abort: taken by the deploy" in local_stack.fab("canary", "abort").stdout
    code, out = deploy.finish()
    assert code == 1 and "failed at step canary: aborted at 10% by root@" in out, out
    assert served_sha(local_stack) == before
    last = json.loads(host_sh(f"tail -n 1 {ROOT}/state/history.jsonl"))
    assert (last["outcome"], last["step"]) == ("rolled_back", "canary") and "aborted at 10%" in last["reason"], last
