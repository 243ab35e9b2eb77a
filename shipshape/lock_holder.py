"""The deploy lock's holder, run on the host (python3 -I -S, stdlib only) for as long as a task holds the lock.

    /usr/bin/python3 -I -S -c '<this file>' '{"lock": ".../state/lock", "flock": ".../state/lock.flock",
                                             "owner": {...}, "timeout": 30, "state": "<shell script>"}'

It takes an exclusive flock(2) on `flock` and keeps it while it runs: the kernel drops the flock the moment
this process dies, so the lock is tied to the task's SSH session, not to a file someone must remove.
The task talks to it over stdin, one line at a time:

    beat            I am alive (sent every few seconds); without a line for `timeout` seconds the holder
                    decides its task is gone (a laptop that lost its network) and exits
    note {json}     merge these fields into the lock file (the current step, a pause) for others to read
    release         the task ended: remove the lock file and exit

EOF on stdin (the SSH session ended: the task was killed, its connection dropped) exits *leaving* the
lock file, which then records an interrupted task: the next holder reports it (`interrupted {json}`) so
its task can clean up before it starts. Output, one line each:

    held-by {json}      someone else holds the lock (exit LOCKED_EXIT): their lock file
    held-by-old {json}  a lock file from a shipshape before the holder, young enough to be live (exit LOCKED_EXIT)
    interrupted {json}  the previous holder died while holding it: what its lock file said
    <state script output, between `state-begin` and `state-end`, when `state` is given>
    held                the lock is this task's
    released            on `release`
"""
import fcntl
import json
import os
import select
import subprocess
import sys
import time

LOCKED_EXIT = 75  # as shipshape.lock.LOCKED_EXIT
LEGACY_STALE_S = 2 * 3600  # as shipshape.lock.STALE_AFTER_S


def _read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return ""


def _write(path, data):
    tmp = f"{path}.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(data, sort_keys=True) + "\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _legacy_holder(text, now):
    """A lock file written by a shipshape without the holder (no flock behind it), young enough to be live."""
    try:
        data = json.loads(text)
    except ValueError:
        return False
    return isinstance(data, dict) and not data.get("held") and now - float(data.get("started") or 0) < LEGACY_STALE_S


def _lines(timeout):
    """stdin's lines as they come; None when none came within `timeout` seconds; stops at EOF."""
    rest = b""
    while True:
        ready, _, _ = select.select([0], [], [], timeout)
        if not ready:
            yield None
            continue
        chunk = os.read(0, 4096)
        if not chunk:
            return
        *complete, rest = (rest + chunk).split(b"\n")
        for line in complete:
            yield line.decode(errors="replace").strip()


def _take(fd, tries=10):
    """The flock, retried briefly: `fab status` and the checks test it with a shared flock for microseconds."""
    for attempt in range(tries):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if attempt < tries - 1:
                time.sleep(0.05)
    return False


def hold(params):
    lock_path, now = params["lock"], time.time()
    os.makedirs(os.path.dirname(lock_path), exist_ok=True)
    fd = os.open(params["flock"], os.O_RDWR | os.O_CREAT, 0o600)
    if not _take(fd):
        _say("held-by " + " ".join(_read(lock_path).split()))
        return LOCKED_EXIT
    previous = _read(lock_path)
    if previous and _legacy_holder(previous, now):
        _say("held-by-old " + " ".join(previous.split()))
        return LOCKED_EXIT
    if previous:
        _say("interrupted " + " ".join(previous.split()))
    mine = {**params["owner"], "held": True, "holder": os.getpid()}
    _write(lock_path, mine)
    if params.get("state"):
        _say("state-begin")
        out = subprocess.run(["/bin/sh", "-c", params["state"]], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        sys.stdout.write(out.stdout.decode(errors="replace"))
        _say("state-end")
    _say("held")
    for line in _lines(params["timeout"]):
        if line is None:
            return 0  # silent for too long: the task is gone; the file stays, saying it was interrupted
        if line == "release":
            if _read(lock_path) == json.dumps(mine, sort_keys=True):
                os.remove(lock_path)
            _say("released")
            return 0
        if line.startswith("note "):
            try:
                mine = {**mine, **json.loads(line[5:]), "held": True}
            except ValueError:
                continue
            _write(lock_path, mine)
    return 0  # EOF: the session ended without a release; the file stays, saying it was interrupted


if __name__ == "__main__":
    sys.exit(hold(json.loads(sys.argv[1])))
