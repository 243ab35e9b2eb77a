"""Graceful shutdown: on SIGTERM or SIGINT the server stops accepting, drains, closes the pools, exits 0."""
from __future__ import annotations

import signal
import threading

import httpx
import pytest

from .conftest import signed_in

SLOW_MS = 2500
CLOSED = "shutdown complete: database pool and redis client closed"


def _refused(app) -> bool:
    try:
        httpx.get(app.url + "/healthz", timeout=1)
    except httpx.ConnectError:
        return True
    return False


# PM2 stops with SIGINT by default, Docker and systemd with SIGTERM: both are a clean stop, exit 0.
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_signal_drains_in_flight_request_then_exits_0(start_node_app, sig):
    app = start_node_app(APP_ALLOW_SLOW="1")
    result: dict = {}
    with signed_in(app, "viewer") as client:
        worker = threading.Thread(target=lambda: result.update(r=client.get(f"/api/slow?ms={SLOW_MS}")))
        worker.start()
        # Signal only once the server has the request in hand, so the test proves draining, not luck.
        app.wait_for(lambda: any(e["message"] == "slow request started" for e in app.json_logs()),
                     5, "the slow request to start")
        app.proc.send_signal(sig)
        app.wait_for(lambda: _refused(app), 2, "new connections to be refused after the signal")
        assert app.proc.poll() is None, "exited before the in-flight request finished"
        worker.join(timeout=15)

    assert result["r"].status_code == 200
    assert result["r"].json() == {"slept_ms": SLOW_MS}
    assert result["r"].headers["connection"] == "close"
    assert app.proc.wait(timeout=15) == 0
    logs = app.json_logs()
    messages = [e["message"] for e in logs]
    assert f"{sig.name} received: stopping, in-flight requests have 20 s to finish" in messages
    done = next(i for i, e in enumerate(logs) if e.get("path") == "/api/slow")
    assert done < messages.index(CLOSED), "the drained request was answered before the pools closed"


def test_idle_keep_alive_connection_does_not_delay_exit(start_node_app):
    app = start_node_app()
    with httpx.Client(base_url=app.url) as client:
        assert client.get("/healthz").status_code == 200  # leaves an idle keep-alive connection open
        app.proc.send_signal(signal.SIGTERM)
        assert app.proc.wait(timeout=3) == 0


def test_slow_endpoint_is_404_unless_enabled(running_node_app):
    with signed_in(running_node_app, "admin") as client:
        assert client.get("/api/slow?ms=1").status_code == 404


def test_slow_endpoint_needs_a_session_even_when_enabled(start_node_app):
    app = start_node_app(APP_ALLOW_SLOW="1")
    assert httpx.get(app.url + "/api/slow?ms=1").status_code == 401
