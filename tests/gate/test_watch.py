"""The watcher (shipshape/gate_watch.py) on a real access log file and real loopback backends, and in the
form it is shipped in: gate.py + gate_watch.py as the stdin of `/usr/bin/python3 -I -S`."""
from __future__ import annotations

import json
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from shipshape.gate import Tally
from shipshape.gate_watch import command, tally_lines, watch
from tests.support.services import free_port

CANDIDATE, LIVE = 8002, 8001


def line(stamp: float, addrs: str, status: int, seconds: float = 0.01) -> str:
    return f"{stamp:.3f}\t{addrs}\t{status}\t{seconds:.3f}\tGET\t/\n"


def test_lines_are_tallied_per_slot_with_failed_attempts_as_errors():
    now = 1000.0
    lines = [line(now, f"127.0.0.1:{CANDIDATE}", 200), line(now, f"127.0.0.1:{CANDIDATE}", 502),
             line(now, f"127.0.0.1:{CANDIDATE}, 127.0.0.1:{LIVE}", 200),  # candidate refused, live answered
             line(now, f"127.0.0.1:{LIVE}", 200, seconds=2.5),            # slow
             line(now - 5, f"127.0.0.1:{LIVE}", 500),                      # before the canary began
             line(now, "-", 404), "garbage\n"]
    counts = tally_lines([x.rstrip("\n").encode() for x in lines], now - 1, (CANDIDATE, LIVE), slow_s=1.0)
    assert counts == {CANDIDATE: Tally(3, 2, 0), LIVE: Tally(2, 0, 1)}


def params(log, candidate=CANDIDATE, live=LIVE, **changes) -> dict:
    return {"log": str(log), "since": time.time() - 1, "candidate": candidate, "live": live, "latency_ms": 1000,
            "policy": {"confidence": 0.95, "tolerance": 0.05, "ceiling": 0.05, "min_requests": 50,
                       "min_seconds": 0.2},
            "probe_paths": [], "probe_rate": 0, "poll": 0.05, "limit": 5, **changes}


def test_a_failing_candidate_in_the_log_is_rolled_back_at_the_first_read(tmp_path):
    log, now = tmp_path / "access.log", time.time()
    log.write_text(line(now - 3600, f"127.0.0.1:{CANDIDATE}", 500) * 1000  # old lines are never read
                   + line(now, f"127.0.0.1:{CANDIDATE}", 500) * 10 + line(now, f"127.0.0.1:{CANDIDATE}", 200) * 20
                   + line(now, f"127.0.0.1:{LIVE}", 200) * 270)
    result = watch(params(log))
    assert result["action"] == "rollback" and "errors 33.3% of 30" in result["reason"], result
    assert result["candidate"] == {"requests": 30, "errors": 10, "slow": 0} and len(result["timeline"]) == 1


def test_lines_appended_while_it_watches_are_read(tmp_path):
    log = tmp_path / "access.log"
    log.write_text("")

    def traffic():
        for _ in range(40):
            with log.open("a") as out:
                out.write(line(time.time(), f"127.0.0.1:{LIVE}", 200) * 9 + line(time.time(), f"127.0.0.1:{CANDIDATE}", 200))
            time.sleep(0.02)

    writer = threading.Thread(target=traffic)
    writer.start()
    result = watch(params(log, limit=3, policy={"min_requests": 30, "min_seconds": 0.3, "tolerance": 0.2}))
    writer.join()
    assert result["action"] == "advance", result
    assert result["candidate"]["requests"] >= 30 and result["probes"] == 0


@pytest.fixture
def backends():
    """Two loopback apps: the live one healthy, the candidate answering `status` on every path."""
    servers = []

    def start(status: int) -> int:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server.server_address[1]

    yield start
    for server in servers:
        server.shutdown()


@pytest.mark.parametrize("status, action", [(200, "advance"), (500, "rollback")])
def test_without_traffic_it_probes_both_slots_until_it_can_decide(tmp_path, backends, status, action):
    result = watch(params(tmp_path / "absent.log", candidate=backends(status), live=backends(200),
                          probe_paths=["/readyz", "/"], probe_rate=200, limit=10))
    assert result["action"] == action, result
    assert result["probes"] > 0 and result["candidate"]["requests"] == result["live"]["requests"] == result["probes"]


def test_the_next_step_starts_from_the_probes_the_last_one_sent(tmp_path, backends):
    ports = {"candidate": backends(200), "live": backends(200)}
    first = watch(params(tmp_path / "absent.log", **ports, probe_paths=["/readyz"], probe_rate=200, limit=10))
    assert first["action"] == "advance" and first["probed"]["candidate"]["requests"] == first["probes"] > 0
    carried = watch(params(tmp_path / "absent.log", **ports, probe_paths=["/readyz"], probe_rate=200, limit=10,
                           probed=first["probed"]))
    assert carried["action"] == "advance" and carried["probes"] < first["probes"]  # the evidence was kept
    assert carried["candidate"]["requests"] == first["probes"] + carried["probes"]


def test_no_traffic_and_no_probes_is_undecided_never_a_pass(tmp_path):
    result = watch(params(tmp_path / "absent.log", limit=0.5))
    assert result["action"] == "undecided" and "no request has reached the candidate" in result["reason"]


def test_the_shipped_form_runs_on_the_system_python(tmp_path):
    log, now = tmp_path / "access.log", time.time()
    log.write_text(line(now, f"127.0.0.1:{CANDIDATE}", 500) * 10 + line(now, f"127.0.0.1:{LIVE}", 200) * 90)
    done = subprocess.run(["bash", "-c", command(params(log))], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["action"] == "rollback"
