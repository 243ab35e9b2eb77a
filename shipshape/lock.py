"""One deploy at a time per stack: a lock file on the host holding its owner as JSON.

    acquire(runner, layout, "fab deploy", stack="prod")   # or raises LockHeld naming owner, task, age
    with held(runner, layout, "fab deploy", stack="prod"):
        ...                                                 # released on exit, even on failure

The lock is created atomically by the host's shell (`set -o noclobber` opens it O_EXCL), so two
deploys racing from two laptops cannot both win; the loser gets LOCKED_EXIT and the owner's JSON in
one round trip. A lock is never broken silently: a stale one (its pid is dead on this machine, or it
is older than STALE_AFTER_S) is reported as stale and needs `fab unlock` or `force=True`.
"""
from __future__ import annotations

import getpass
import json
import os
import shlex
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass

from shipshape.layout import Layout
from shipshape.remote import Command, Script

LOCKED_EXIT = 75  # EX_TEMPFAIL: "try again later", distinct from any failure of the commands themselves
STALE_AFTER_S = 2 * 3600  # longer than any deploy with canary bakes; older locks are left-overs


class LockHeld(Exception):
    """Another deploy holds the stack's lock; the message names its owner, task and age."""

    def __init__(self, info: "LockInfo", stack: str | None, now: float | None = None):
        self.info = info
        super().__init__(describe(info, stack, now))


@dataclass(frozen=True)
class LockInfo:
    who: str
    pid: int | None
    task: str
    started: float
    raw: str = ""

    @property
    def machine(self) -> str:
        return self.who.rpartition("@")[2]

    def age(self, now: float | None = None) -> float:
        return max(0.0, (time.time() if now is None else now) - self.started)

    def stale_reason(self, now: float | None = None, hostname: str | None = None, alive=None) -> str | None:
        """Why this lock looks abandoned, or None while its owner may still be running."""
        hostname = hostname or socket.gethostname()
        alive = alive or pid_alive
        if self.age(now) > STALE_AFTER_S:
            return f"older than {format_age(STALE_AFTER_S)}"
        if self.pid and self.machine == hostname and not alive(self.pid):
            return f"pid {self.pid} is not running on {hostname}"
        return None


def who() -> str:
    """user@machine of whoever runs this process (the lock's owner, a history entry's author)."""
    return f"{getpass.getuser()}@{socket.gethostname()}"


def owner(task: str, now: float | None = None) -> dict:
    """Who is taking the lock: user@machine, this process, the task and the time."""
    return {"who": who(), "pid": os.getpid(), "task": task,
            "started": int(time.time() if now is None else now)}


def acquire_command(layout: Layout, owner: dict) -> Command:
    """Create the lock holding `owner`, or print the existing lock and exit LOCKED_EXIT."""
    lock, body = shlex.quote(layout.lock_file), shlex.quote(json.dumps(owner, sort_keys=True))
    return Script(f"mkdir -p {shlex.quote(layout.state)} && "
                  f"if (set -o noclobber; printf '%s\\n' {body} > {lock}) 2>/dev/null; then exit 0; fi; "
                  f"cat {lock} 2>/dev/null; exit {LOCKED_EXIT}")


def read_command(layout: Layout) -> Command:
    """Print the lock's JSON, or nothing when the stack is unlocked."""
    lock = shlex.quote(layout.lock_file)
    return Script(f"if [ -e {lock} ]; then cat {lock}; fi")


def release_command(layout: Layout, expected: str | None = None) -> Command:
    """Remove the lock; with `expected`, only if it still holds exactly that text (breaking a stale one)."""
    lock = shlex.quote(layout.lock_file)
    if expected is None:
        return ["rm", "-f", layout.lock_file]
    return Script(f"if [ \"$(cat {lock} 2>/dev/null)\" = {shlex.quote(expected.strip())} ]; "
                  f"then rm -f {lock}; fi")


def parse(stdout: str) -> LockInfo | None:
    """The lock's owner from its JSON; a half-written or foreign file still reads as held."""
    text = stdout.strip()
    if not text:
        return None
    try:
        data = json.loads(text)
        return LockInfo(str(data.get("who", "unknown")), _int(data.get("pid")),
                        str(data.get("task", "unknown task")), float(data.get("started", 0)), text)
    except (ValueError, AttributeError, TypeError):
        return LockInfo("unknown", None, "unknown task", 0.0, text)


def acquire(runner, layout: Layout, task: str, *, stack: str | None = None, force: bool = False) -> dict:
    """Take the lock in one round trip; raise LockHeld if someone has it (force breaks a stale one)."""
    me = owner(task)
    result = runner.run(acquire_command(layout, me), check=False)
    if result.exit_code == LOCKED_EXIT:
        info = parse(result.stdout)
        if info and force and info.stale_reason():
            runner.run(release_command(layout, expected=info.raw))
            return acquire(runner, layout, task, stack=stack, force=False)
        raise LockHeld(info or LockInfo("unknown", None, "unknown task", time.time()), stack)
    if not result.ok:
        runner.run(acquire_command(layout, me))  # re-run with check: raises the masked RemoteError
    return me


def status(runner, layout: Layout) -> LockInfo | None:
    return parse(runner.run(read_command(layout)).stdout)


def release(runner, layout: Layout) -> None:
    runner.run(release_command(layout))


@contextmanager
def held(runner, layout: Layout, task: str, *, stack: str | None = None, force: bool = False):
    """Hold the lock for the block; release it on the way out, whatever happened inside."""
    me = acquire(runner, layout, task, stack=stack, force=force)
    try:
        yield me
    finally:
        runner.run(release_command(layout, expected=json.dumps(me, sort_keys=True)), check=False)


def describe(info: LockInfo, stack: str | None, now: float | None = None) -> str:
    """`locked by alice@laptop (fab deploy, pid 123) for 4m12s; ...` with what to do about it."""
    pid = f", pid {info.pid}" if info.pid else ""
    text = f"locked by {info.who} ({info.task}{pid}) for {format_age(info.age(now))}"
    unlock = f"`fab unlock --stack {stack or '<stack>'}`"
    stale = info.stale_reason(now)
    if stale:
        return f"{text}; the lock looks stale ({stale}): run {unlock}, or pass --force"
    return f"{text}; if that deploy is dead, run {unlock}"


def format_age(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
