"""/readyz: 200 only when PostgreSQL and Redis answer (and no migration is pending); never hangs."""
from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest

from tests.support.services import free_port


def _readyz(app) -> httpx.Response:
    start = time.monotonic()
    response = httpx.get(app.url + "/readyz", timeout=15)
    assert time.monotonic() - start < 4.5, "readyz must answer within ~3 s whatever its dependencies do"
    return response


@pytest.fixture
def silent_server():
    """A TCP port that accepts connections and never answers: a hung dependency."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


def test_ready_when_everything_answers(running_node_app):
    response = _readyz(running_node_app)
    assert (response.status_code, response.json()) == (200, {"status": "ready"})


def test_unready_when_database_refuses(start_node_app):
    app = start_node_app(database_url=f"postgresql://app:pw@127.0.0.1:{free_port()}/app")
    response = _readyz(app)
    assert response.status_code == 503
    assert response.json()["reason"].startswith("database: "), response.json()
    assert "ECONNREFUSED" in response.json()["reason"]


def test_unready_within_deadline_when_database_hangs(start_node_app, silent_server):
    app = start_node_app(database_url=f"postgresql://app:pw@127.0.0.1:{silent_server}/app")
    response = _readyz(app)
    assert response.status_code == 503
    assert response.json()["reason"].startswith("database: "), response.json()


def test_unready_within_deadline_when_redis_hangs(start_node_app, silent_server):
    app = start_node_app(REDIS_URL=f"redis://:pw@127.0.0.1:{silent_server}/0")
    response = _readyz(app)
    assert (response.status_code, response.json()) == (
        503, {"status": "unready", "reason": "redis: no answer within 3s"})
    assert httpx.get(app.url + "/healthz").status_code == 200, "liveness must not depend on redis"


@pytest.mark.parametrize("service, reason", [("postgres_server", "database: "), ("redis_server", "redis: ")])
def test_unready_while_a_dependency_is_down_and_ready_again_after(start_node_app, request, service, reason):
    server = request.getfixturevalue(service)
    app = start_node_app()
    assert _readyz(app).status_code == 200
    server.stop()
    try:
        response = _readyz(app)
        assert response.status_code == 503
        assert response.json()["reason"].startswith(reason), response.json()
        assert httpx.get(app.url + "/healthz").status_code == 200
    finally:
        server.start()
    app.wait_for(lambda: _readyz(app).status_code == 200, 15, f"readyz 200 after {service} restarted")
