"""The deploy lock: exact commands, owner parsing and messages, and the real commands run by a local shell."""
from __future__ import annotations

import json
import subprocess
import sys

import invoke
import pytest

from shipshape import lock
from shipshape.layout import Layout
from shipshape.remote import Runner, render

LAYOUT = Layout("/srv/shipshape")
OWNER = {"who": "alice@laptop", "pid": 123, "task": "fab deploy", "started": 1000}


def test_acquire_command_is_atomic_and_exits_distinctly():
    text = render(lock.acquire_command(LAYOUT, OWNER))
    assert text == (
        "mkdir -p /srv/shipshape/state && if (set -o noclobber; printf '%s\\n' "
        "'{\"pid\": 123, \"started\": 1000, \"task\": \"fab deploy\", \"who\": \"alice@laptop\"}' "
        "> /srv/shipshape/state/lock) 2>/dev/null; then exit 0; fi; "
        "cat /srv/shipshape/state/lock 2>/dev/null; exit 75")


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


def test_parse_empty_is_unlocked():
    assert lock.parse("") is None and lock.parse("\n") is None


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


# The real commands, run by a local shell on a temporary layout (the host is not the point here).

@pytest.fixture
def runner():
    return Runner(invoke.Context())


@pytest.fixture
def layout(tmp_path):
    return Layout(str(tmp_path / "root"))


def test_second_acquire_is_refused_naming_the_owner(runner, layout):
    me = lock.acquire(runner, layout, "fab deploy", stack="local")
    with pytest.raises(lock.LockHeld) as error:
        lock.acquire(runner, layout, "fab rollback", stack="local")
    message = str(error.value)
    assert message.startswith(f"locked by {me['who']} (fab deploy, pid {me['pid']}) for ")
    assert "`fab unlock --stack local`" in message and "stale" not in message
    assert lock.status(runner, layout).task == "fab deploy"
    lock.release(runner, layout)
    assert lock.status(runner, layout) is None
    lock.acquire(runner, layout, "fab rollback")


def test_held_releases_on_failure(runner, layout):
    with pytest.raises(RuntimeError):
        with lock.held(runner, layout, "fab deploy"):
            assert lock.status(runner, layout) is not None
            raise RuntimeError("deploy failed")
    assert lock.status(runner, layout) is None


def test_held_does_not_release_a_lock_it_did_not_take(runner, layout):
    lock.acquire(runner, layout, "fab deploy")
    with pytest.raises(lock.LockHeld):
        with lock.held(runner, layout, "fab rollback"):
            pass
    assert lock.status(runner, layout).task == "fab deploy"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _plant(layout, pid: int) -> None:
    owner = {**lock.owner("fab deploy"), "pid": pid}
    Runner(invoke.Context()).run(lock.acquire_command(layout, owner))


def test_dead_owner_is_reported_stale_and_unlock_recovers(runner, layout):
    _plant(layout, _dead_pid())
    with pytest.raises(lock.LockHeld) as error:
        lock.acquire(runner, layout, "fab deploy", stack="local")
    assert "looks stale (pid" in str(error.value) and "is not running on" in str(error.value)
    assert lock.status(runner, layout).stale_reason()
    lock.release(runner, layout)  # what `fab unlock` does
    lock.acquire(runner, layout, "fab deploy")


def test_force_breaks_only_a_stale_lock(runner, layout):
    _plant(layout, _dead_pid())
    assert lock.acquire(runner, layout, "fab deploy", force=True)["task"] == "fab deploy"
    with pytest.raises(lock.LockHeld):  # this process is alive: its lock is not stale
        lock.acquire(runner, layout, "fab rollback", force=True)
