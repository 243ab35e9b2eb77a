"""The deploy lock: exact commands, owner parsing and messages, and the real commands run by a local shell."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import invoke
import pytest

from shipshape import lock
from shipshape.layout import Layout
from shipshape.remote import Runner, Script, render

LAYOUT = Layout("/srv/shipshape")
OWNER = {"who": "alice@laptop", "pid": 123, "task": "fab deploy", "started": 1000}


@pytest.mark.parametrize("expected, text", [
    (None, "rm -f /srv/shipshape/state/lock"),
    ('{"a": 1}\n', "if [ \"$(cat /srv/shipshape/state/lock 2>/dev/null)\" = '{\"a\": 1}' ]; "
                   "then rm -f /srv/shipshape/state/lock; fi"),
])
def test_release_command(expected, text):
    assert render(lock.release_command(LAYOUT, expected)) == text


@pytest.mark.parametrize("stdout, who, pid, task, started", [
    (json.dumps(OWNER), "alice@laptop", 123, "fab deploy", 1000.0),
    ('{"who": "bob@ci", "task": "fab rollback", "started": 5}', "bob@ci", None, "fab rollback", 5.0),
    ("garbage{", "unknown", None, "unknown task", 0.0),
])
def test_parse(stdout, who, pid, task, started):
    info = lock.parse(stdout)
    assert (info.who, info.pid, info.task, info.started) == (who, pid, task, started)


def test_parse_reads_whether_a_holder_has_it_and_the_noted_step():
    text = json.dumps({**OWNER, "held": True, "step": "canary", "slot": "b"})
    info = lock.parse(text + "\n#held 1\n")
    assert (info.held, info.step, info.fields["slot"], info.raw) == (True, "canary", "b", text)
    assert lock.parse(text + "\n#held 0").held is False and lock.parse(text).held is None


def test_parse_empty_is_unlocked():
    assert lock.parse("") is None and lock.parse("\n") is None


@pytest.mark.parametrize("held, stale", [
    (True, None),  # a live holder: never stale, however old or wherever its pid
    (False, "no process holds it: that task was interrupted, and the next one cleans up after it"),
])
def test_a_holder_decides_staleness(held, stale):
    info = lock.LockInfo("alice@laptop", 123, "fab deploy", 0.0, held=held)
    assert info.stale_reason(now=lock.STALE_AFTER_S * 10, hostname="laptop", alive=lambda pid: False) == stale


@pytest.mark.parametrize("age, machine, alive, stale", [
    (60, "laptop", True, None),
    (60, "laptop", False, "pid 123 is not running on laptop"),
    (60, "elsewhere", False, None),  # another machine's pid cannot be checked from here
    (lock.STALE_AFTER_S + 1, "elsewhere", True, "older than 2h00m"),
])
def test_stale_reason(age, machine, alive, stale):
    info = lock.LockInfo(f"alice@{machine}", 123, "fab deploy", 1000.0)
    assert info.stale_reason(now=1000 + age, hostname="laptop", alive=lambda pid: alive) == stale


@pytest.mark.parametrize("seconds, text", [(5, "5s"), (252, "4m12s"), (3725, "1h02m"), (90000, "1d1h")])
def test_format_age(seconds, text):
    assert lock.format_age(seconds) == text


def test_message_names_owner_task_age_and_the_way_out():
    info = lock.LockInfo("alice@elsewhere", 123, "fab deploy", 1000.0)
    assert lock.describe(info, "prod", now=1252) == (
        "locked by alice@elsewhere (fab deploy, pid 123) for 4m12s; "
        "if that deploy is dead, run `fab unlock --stack prod`")
    live = lock.LockInfo("alice@elsewhere", 123, "fab deploy", 1000.0, held=True, step="canary")
    assert lock.describe(live, "prod", now=1252) == (
        "locked by alice@elsewhere (fab deploy, pid 123, at canary) for 4m12s; it is running (its holder on the "
        "host is alive): wait for it, or stop it with `fab unlock --stack prod` --force")


# The real commands, run by a local shell on a temporary layout (the host is not the point here).

@pytest.fixture
def runner():
    return Runner(invoke.Context())


@pytest.fixture
def layout(tmp_path):
    return Layout(str(tmp_path / "root"))


def test_second_acquire_is_refused_naming_the_owner(runner, layout):
    with lock.held(runner, layout, "fab deploy", stack="local") as hold:
        with pytest.raises(lock.LockHeld) as error:
            lock.acquire(runner, layout, "fab rollback", stack="local")
        message = str(error.value)
        assert message.startswith(f"locked by {hold.owner['who']} (fab deploy, pid {hold.owner['pid']}) for ")
        assert "it is running (its holder on the host is alive)" in message
        info = lock.status(runner, layout)
        assert (info.task, info.held) == ("fab deploy", True)
    assert lock.status(runner, layout) is None  # released: the file is gone
    with lock.held(runner, layout, "fab rollback") as hold:
        assert hold.interrupted is None


def test_held_releases_on_failure(runner, layout):
    with pytest.raises(RuntimeError):
        with lock.held(runner, layout, "fab deploy"):
            assert lock.status(runner, layout) is not None
            raise RuntimeError("deploy failed")
    assert lock.status(runner, layout) is None


def test_the_state_comes_in_the_locks_round_trip(runner, layout):
    with lock.held(runner, layout, "fab deploy", state=Script("echo one; echo two")) as hold:
        assert hold.state_text == "one\ntwo"
    assert runner.count == 1


def _wait(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_task_that_dies_holding_the_lock_is_reported_and_the_next_proceeds(runner, layout):
    hold = lock.acquire(runner, layout, "fab deploy", stack="local")
    hold.note(step="canary", slot="b", release="r2")
    _wait(lambda: lock.status(runner, layout).step == "canary")
    hold._stop.set()
    hold.stream.end()  # the SSH session ends without a release: what SIGKILL or a dropped connection does
    _wait(lambda: lock.status(runner, layout).held is False)
    assert "was interrupted" in lock.describe(lock.status(runner, layout), "local")
    with lock.held(runner, layout, "fab deploy", stack="local") as again:
        was = again.interrupted
        assert (was.task, was.step, was.fields["slot"], was.fields["release"]) == ("fab deploy", "canary", "b", "r2")
    assert lock.status(runner, layout) is None


def test_a_holder_that_hears_nothing_lets_the_lock_go(runner, layout, monkeypatch):
    monkeypatch.setattr(lock, "HOLDER_TIMEOUT_S", 0.5)
    monkeypatch.setattr(lock, "HEARTBEAT_S", 60.0)  # the task is frozen: no heartbeat reaches the holder
    lock.acquire(runner, layout, "fab deploy")
    _wait(lambda: lock.status(runner, layout).held is False)
    with lock.held(runner, layout, "fab deploy") as again:
        assert again.interrupted.task == "fab deploy"


def test_heartbeats_keep_a_quiet_task_holding(runner, layout, monkeypatch):
    monkeypatch.setattr(lock, "HOLDER_TIMEOUT_S", 0.6)
    monkeypatch.setattr(lock, "HEARTBEAT_S", 0.1)
    with lock.held(runner, layout, "fab deploy") as hold:
        time.sleep(1.5)
        assert not hold.lost and lock.status(runner, layout).held is True


def test_unlock_force_stops_a_live_holder(runner, layout):
    hold = lock.acquire(runner, layout, "fab deploy")
    runner.run(lock.break_command(layout, lock.status(runner, layout)))
    assert lock.status(runner, layout) is None
    _wait(lambda: hold.lost)
    with lock.held(runner, layout, "fab deploy") as again:
        assert again.interrupted is None


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _plant(layout, pid: int, age: float = 0) -> None:
    """A lock file as a shipshape before the holder wrote it: no flock behind it."""
    owner = {**lock.owner("fab deploy"), "pid": pid, "started": time.time() - age}
    Path(layout.state).mkdir(parents=True, exist_ok=True)
    Path(layout.lock_file).write_text(json.dumps(owner) + "\n")


def test_a_fresh_lock_from_before_the_holder_still_blocks(runner, layout):
    _plant(layout, os.getpid())
    with pytest.raises(lock.LockHeld) as error:
        lock.acquire(runner, layout, "fab deploy", stack="local")
    assert "if that deploy is dead, run `fab unlock --stack local`" in str(error.value)


def test_dead_owner_is_reported_stale_and_force_recovers(runner, layout):
    _plant(layout, _dead_pid())
    with pytest.raises(lock.LockHeld) as error:
        lock.acquire(runner, layout, "fab deploy", stack="local")
    assert "looks stale (pid" in str(error.value) and "is not running on" in str(error.value)
    with lock.held(runner, layout, "fab deploy", force=True) as hold:
        assert hold.owner["task"] == "fab deploy"


def test_force_breaks_only_a_stale_lock(runner, layout):
    _plant(layout, os.getpid())
    with pytest.raises(lock.LockHeld):  # this process is alive: its lock is not stale
        lock.acquire(runner, layout, "fab rollback", force=True)
    _plant(layout, os.getpid(), age=lock.STALE_AFTER_S + 5)  # hours old: taken over on its own
    with lock.held(runner, layout, "fab rollback") as hold:
        assert hold.interrupted.task == "fab deploy"
