"""One task at a time per stack: the deploy lock, held on the host by a process tied to the task's SSH session.

    with held(runner, layout, "fab deploy", stack="prod", state=state_command(...)) as hold:
        hold.state_text                 # the host's state, read in the same round trip as the lock
        hold.interrupted                # LockInfo of a task that died holding the lock, or None
        hold.note(step="canary 10%")    # others' `fab lock` / `fab status` show it
    ...                                 # released on exit, even on failure; LockHeld if someone has it

The holder (shipshape/lock_holder.py) keeps an flock(2) on state/lock.flock and writes its owner to
state/lock. The kernel drops the flock when the holder dies, and the holder dies with the task's SSH
session (EOF on its stdin) or when the task stops sending its heartbeat (a laptop that lost its network).
So a SIGKILLed or disconnected deploy never strands the team: the next task finds the lock file without
a holder, reports the interrupted task (and the step it was at), cleans up and proceeds. A live holder
is never overridden. A lock file from a shipshape before the holder (no flock behind it) still blocks
until it is STALE_AFTER_S old or removed with `fab unlock`.
"""
from __future__ import annotations

import getpass
import json
import os
import shlex
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from shipshape.facts import ISOLATED, PYTHON
from shipshape.layout import Layout
from shipshape.remote import Command, RemoteError, Script, render

HEARTBEAT_S = 5.0         # the task tells its holder it is alive this often
HOLDER_TIMEOUT_S = 30.0   # a holder that heard nothing for this long lets the lock go
HOLDER_MARK = "The deploy lock's holder"  # the first words of lock_holder.py: in its command line on the host

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
    held: bool | None = None   # a live holder has it (None: unknown, e.g. a lock written before the holder)
    step: str | None = None    # what the task was doing, as it last noted

    @property
    def fields(self) -> dict:
        """Everything the lock file holds (the task's notes: slot, release, ...); {} when it is not JSON."""
        try:
            data = json.loads(self.raw)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    @property
    def machine(self) -> str:
        return self.who.rpartition("@")[2]

    def age(self, now: float | None = None) -> float:
        return max(0.0, (time.time() if now is None else now) - self.started)

    def stale_reason(self, now: float | None = None, hostname: str | None = None, alive=None) -> str | None:
        """Why this lock looks abandoned, or None while its owner may still be running."""
        hostname = hostname or socket.gethostname()
        alive = alive or pid_alive
        if self.held is False:
            return "no process holds it: that task was interrupted, and the next one cleans up after it"
        if self.held:
            return None
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


def read_command(layout: Layout) -> Command:
    """Print the lock's JSON and whether a live holder has it (`#held 1`), or nothing when the stack is unlocked."""
    lock, flock = shlex.quote(layout.lock_file), shlex.quote(layout.lock_file + ".flock")
    return Script(f"if [ -e {lock} ]; then cat {lock}; if [ ! -e {flock} ]; then :; "
                  f"elif flock -n -s {flock} true; then echo '#held 0'; else echo '#held 1'; fi; fi")


def release_command(layout: Layout, expected: str | None = None) -> Command:
    """Remove the lock; with `expected`, only if it still holds exactly that text (breaking a stale one)."""
    lock = shlex.quote(layout.lock_file)
    if expected is None:
        return ["rm", "-f", layout.lock_file]
    return Script(f"if [ \"$(cat {lock} 2>/dev/null)\" = {shlex.quote(expected.strip())} ]; "
                  f"then rm -f {lock}; fi")


def break_command(layout: Layout, info: "LockInfo") -> Command:
    """`fab unlock --force`: stop the lock's live holder (only if that pid is still a holder), remove the file."""
    pid = _int(info.fields.get("holder"))
    stop = (f"if grep -q {shlex.quote(HOLDER_MARK)} /proc/{pid}/cmdline 2>/dev/null; then kill {pid}; "
            f"while kill -0 {pid} 2>/dev/null; do sleep 0.05; done; fi; ") if pid else ""
    return Script(stop + render(release_command(layout, expected=info.raw)))


def parse(stdout: str, held: bool | None = None) -> LockInfo | None:
    """The lock's owner from its JSON (and read_command's `#held` line); a half-written or foreign file still
    reads as held."""
    lines = stdout.strip().splitlines()
    if lines and lines[-1].startswith("#held "):
        held = lines.pop().endswith("1")
    text = "\n".join(lines).strip()
    if not text:
        return None
    try:
        data = json.loads(text)
        return LockInfo(str(data.get("who", "unknown")), _int(data.get("pid")),
                        str(data.get("task", "unknown task")), float(data.get("started", 0)), text, held,
                        data.get("step"))
    except (ValueError, AttributeError, TypeError):
        return LockInfo("unknown", None, "unknown task", 0.0, text, held)


def holder_command(layout: Layout, owner: dict, state: Command | None = None) -> Command:
    """The holder (shipshape/lock_holder.py) for `owner`, printing the host's `state` once it holds the lock."""
    source = Path(__file__).with_name("lock_holder.py").read_text(encoding="utf-8")
    params = {"lock": layout.lock_file, "flock": layout.lock_file + ".flock", "owner": owner,
              "timeout": HOLDER_TIMEOUT_S, "state": render(state) if state is not None else None}
    return [PYTHON, *ISOLATED.split(), "-c", source, json.dumps(params, sort_keys=True)]


@dataclass
class Hold:
    """The lock, held: its holder's stream, what it found, and the heartbeat that keeps it."""

    stream: object
    owner: dict
    interrupted: LockInfo | None = None
    state_text: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self):
        threading.Thread(target=self._beat, name="lock-heartbeat", daemon=True).start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            if not self.stream.send("beat"):
                return

    def note(self, **fields) -> None:
        """Merge `fields` (step, paused, ...) into the lock file, for `fab lock` and `fab status` to show."""
        self.stream.send("note " + json.dumps(fields, sort_keys=True))

    @property
    def lost(self) -> bool:
        """The holder is gone (this process was suspended past HOLDER_TIMEOUT_S, the connection dropped)."""
        return not self.stream.running

    def release(self) -> None:
        self._stop.set()
        if self.stream.send("release"):
            while (line := self.stream.readline()) and line.strip() != "released":
                pass
        self.stream.end()


def acquire(runner, layout: Layout, task: str, *, stack: str | None = None, force: bool = False,
            state: Command | None = None) -> Hold:
    """Take the lock (and read `state`) in one round trip; raise LockHeld if someone has it. `force` breaks
    only a stale lock file written before the holder existed: a live holder is never overridden."""
    me = owner(task)
    stream = runner.open(holder_command(layout, me, state))
    interrupted, state_lines, reading_state = None, [], False
    while True:
        line = stream.readline()
        if not line:
            stream.end()
            raise RemoteError("the deploy lock's holder (python3 on the host)", 1,
                              "it exited before taking the lock: is /usr/bin/python3 installed there?")
        line = line.rstrip("\n")
        if reading_state:
            if line == "state-end":
                reading_state = False
            else:
                state_lines.append(line)
        elif line.startswith(("held-by ", "held-by-old ")):
            stream.end()
            kind, _, text = line.partition(" ")
            info = parse(text, held=True if kind == "held-by" else None) or LockInfo(
                "unknown", None, "unknown task", time.time(), held=True)
            if force and info.stale_reason():
                runner.run(release_command(layout, expected=info.raw))
                return acquire(runner, layout, task, stack=stack, force=False, state=state)
            raise LockHeld(info, stack)
        elif line.startswith("interrupted "):
            interrupted = parse(line[len("interrupted "):], held=False)
        elif line == "state-begin":
            reading_state = True
        elif line == "held":
            return Hold(stream, me, interrupted, "\n".join(state_lines) if state is not None else None)


def status(runner, layout: Layout) -> LockInfo | None:
    return parse(runner.run(read_command(layout)).stdout)


def release(runner, layout: Layout) -> None:
    runner.run(release_command(layout))


@contextmanager
def held(runner, layout: Layout, task: str, *, stack: str | None = None, force: bool = False,
         state: Command | None = None):
    """Hold the lock for the block (yields the Hold); release it on the way out, whatever happened inside."""
    hold = acquire(runner, layout, task, stack=stack, force=force, state=state)
    try:
        yield hold
    finally:
        hold.release()


def describe(info: LockInfo, stack: str | None, now: float | None = None) -> str:
    """`locked by alice@laptop (fab deploy, pid 123, at canary) for 4m12s; ...` with what to do about it."""
    pid = f", pid {info.pid}" if info.pid else ""
    at = f", at {info.step}" if info.step else ""
    text = f"locked by {info.who} ({info.task}{pid}{at}) for {format_age(info.age(now))}"
    unlock = f"`fab unlock --stack {stack or '<stack>'}`"
    if info.held:
        return f"{text}; it is running (its holder on the host is alive): wait for it, or stop it with {unlock} --force"
    stale = info.stale_reason(now)
    if info.held is False:
        return f"{text}; {stale}"
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
