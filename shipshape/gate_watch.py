"""The canary step's watcher, run on the host (python3 -I -S, stdlib only) after shipshape/gate.py's source.

    /usr/bin/python3 -I -S - '{"log": ..., "since": ..., "candidate": 8002, "live": 8001, ...}' <<'EOF'
    <gate.py> <this file>
    EOF

It follows nginx's access log (shipshape/nginx.py LOG_FORMAT: msec, upstream_addr, status, request_time)
every `poll` seconds and tallies each slot's answers since the canary began: requests, errors (5xx, and
each upstream nginx failed to reach before trying the next one), and slow answers. It then asks
gate.judge() and exits with the first final verdict. If it has none by `limit` seconds, it exits
undecided. While the gate wants more data, it sends its own GET probes to each slot's port (readiness
and the stack's safe paths), at `probe_rate` per second per slot, and counts them the same way. It
prints one JSON object: the verdict, both tallies, probes sent, and a timeline for the deploy's report. The
probes' tallies (`probed`) go back in with the next step's params, as the access log does not hold them.
"""
import json
import os
import shlex
import sys
import time
import urllib.error
import urllib.request

try:  # on the host this file runs after gate.py's source, with no shipshape package to import
    from shipshape.gate import Policy, Tally, judge
except ImportError:
    pass

HEREDOC = "SHIPSHAPE_GATE"
PROBE_TIMEOUT = 2.0
BACKTRACK = 60.0  # lines from two nginx workers land slightly out of order: read back this far before `since`


def _start_offset(path, since):
    """Where the lines at or after `since - BACKTRACK` begin: read backwards, cost follows the window."""
    try:
        size = os.path.getsize(path)
    except OSError:
        return 0
    block, offset = 65536, size
    with open(path, "rb") as log:
        while offset > 0:
            offset = max(0, offset - block)
            log.seek(offset)
            first = log.readline() if offset else b""
            line = log.readline()
            stamp = _stamp(line)
            if stamp is not None and stamp < since - BACKTRACK:
                return offset + len(first)
    return 0


def _stamp(line):
    try:
        return float(line.split(b"\t", 1)[0])
    except (ValueError, IndexError):
        return None


class Follower:
    """New complete lines of the access log since the last read (a rotated log starts over)."""

    def __init__(self, path, since):
        self.path, self.offset, self.rest = path, _start_offset(path, since), b""

    def lines(self):
        try:
            with open(self.path, "rb") as log:
                if os.fstat(log.fileno()).st_size < self.offset:
                    self.offset, self.rest = 0, b""
                log.seek(self.offset)
                data = log.read()
        except OSError:
            return []
        self.offset += len(data)
        *complete, self.rest = (self.rest + data).split(b"\n")
        return complete


def tally_lines(lines, since, ports, slow_s):
    """{port: Tally} of the log lines at or after `since` answered by (or failed at) one of `ports`."""
    counts = {port: Tally() for port in ports}
    for line in lines:
        fields = line.split(b"\t")
        if len(fields) < 4:
            continue
        try:
            stamp, status, seconds = float(fields[0]), int(fields[2]), float(fields[3])
        except ValueError:
            continue
        if stamp < since:
            continue
        tried = [addr.strip() for addr in fields[1].decode(errors="replace").split(",")]
        for i, addr in enumerate(tried):
            port = _port(addr)
            if port not in counts:
                continue
            last = i == len(tried) - 1
            failed = (not last) or status >= 500  # an upstream nginx moved on from failed to answer
            counts[port] = counts[port] + Tally(1, int(failed), int(last and seconds > slow_s))
    return counts


def _port(addr):
    host, _, port = addr.rpartition(":")
    return int(port) if host == "127.0.0.1" and port.isdigit() else None


def probe(port, path, slow_s):
    """One GET to the slot's own port: a Tally of one request."""
    started = time.monotonic()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=PROBE_TIMEOUT) as answer:
            status = answer.status
    except urllib.error.HTTPError as error:
        status = error.code
    except (OSError, ValueError):
        status = 599  # no answer at all: as nginx would count a connection failure
    return Tally(1, int(status >= 500), int(time.monotonic() - started > slow_s))


def watch(params, clock=time.time, sleep=time.sleep):
    policy = Policy(**params["policy"])
    candidate, live, slow_s = params["candidate"], params["live"], params["latency_ms"] / 1000.0
    since, started = params["since"], clock()
    follower = Follower(params["log"], since)
    seen = {candidate: Tally(), live: Tally()}
    carried = params.get("probed") or {}  # earlier steps' probes: they bypass nginx, so the log does not have them
    probes = {candidate: Tally(**carried.get("candidate", {})), live: Tally(**carried.get("live", {}))}
    paths, rate, poll = params["probe_paths"], params["probe_rate"], params["poll"]
    timeline, sent = [], 0
    while True:
        for port, counted in tally_lines(follower.lines(), since, (candidate, live), slow_s).items():
            seen[port] = seen[port] + counted
        c, l = seen[candidate] + probes[candidate], seen[live] + probes[live]
        elapsed = clock() - started
        verdict = judge(c, l, policy, elapsed)
        timeline.append([round(elapsed, 2), c.requests, c.errors, c.slow, l.requests, l.errors, l.slow])
        if verdict.final or elapsed >= params["limit"]:
            action = verdict.action if verdict.final else "undecided"
            return {"action": action, "reason": verdict.reason, "elapsed": round(elapsed, 3),
                    "candidate": vars(c), "live": vars(l), "probes": sent, "timeline": timeline,
                    "probed": {"candidate": vars(probes[candidate]), "live": vars(probes[live])}}
        deadline = clock() + poll
        if verdict.action == "more-data" and paths and rate:
            for i in range(max(1, int(rate * poll))):
                for port in (candidate, live):
                    probes[port] = probes[port] + probe(port, paths[(sent + i) % len(paths)], slow_s)
                sent += 1
        sleep(max(0.0, deadline - clock()))


def command(params):
    """The shell command that runs the watcher on a host: gate.py's source, then this file's, as stdin."""
    from pathlib import Path

    from shipshape.facts import ISOLATED, PYTHON  # the system python, stdlib only, as the host probe runs

    sources = [Path(__file__).with_name(name).read_text(encoding="utf-8") for name in ("gate.py", "gate_watch.py")]
    return (f"{PYTHON} {ISOLATED} - {shlex.quote(json.dumps(params))} <<'{HEREDOC}'\n" + "\n".join(sources)
            + f"\n{HEREDOC}")


if __name__ == "__main__":
    print(json.dumps(watch(json.loads(sys.argv[1]))))
