"""/readyz: true only when PostgreSQL and Redis answer and the schema is at head; never hangs."""
from __future__ import annotations

import time

import httpx
import pytest

from tests.support.sample_app import create_user, migrate

from .conftest import PASSWORD


def _readyz(app) -> httpx.Response:
    start = time.monotonic()
    response = httpx.get(app.url + "/readyz", timeout=15)
    # Short connect timeouts: a dead dependency must not stall the probe.
    assert time.monotonic() - start < 5, "readyz took too long"
    return response


def test_ready_when_everything_answers(running_app):
    response = _readyz(running_app)
    assert (response.status_code, response.json()) == (200, {"status": "ready"})


def test_unready_while_database_down_and_ready_again_after(start_app, postgres_server):
    app = start_app()
    assert _readyz(app).status_code == 200
    postgres_server.stop()
    try:
        response = _readyz(app)
        assert response.status_code == 503
        assert response.json()["reason"].startswith("database:"), response.json()
        assert app._get_ok("/healthz"), "liveness must not depend on the database"
    finally:
        postgres_server.start()
    app.wait_for(lambda: _readyz(app).status_code == 200, 30, "readyz 200 after database restart")


def test_unready_while_redis_down(start_app, redis_server):
    app = start_app()
    redis_server.stop()
    try:
        response = _readyz(app)
        assert response.status_code == 503
        assert response.json()["reason"].startswith("redis:")
    finally:
        redis_server.start()
    app.wait_for(lambda: _readyz(app).status_code == 200, 10, "readyz 200 after redis restart")


@pytest.mark.parametrize("revision, expected", [
    (None, "schema: database at no migrations applied, migrations head is 0002_project_status"),
    ("0001_initial", "schema: database at 0001_initial, migrations head is 0002_project_status"),
])
def test_unready_when_schema_behind_head(start_app, postgres_server, revision, expected):
    url = postgres_server.create_database()
    if revision:
        migrate(url, revision)
    app = start_app(database_url=url)
    response = _readyz(app)
    assert (response.status_code, response.json()["reason"]) == (503, expected)
    migrate(url)  # the deploy's migration step catches the schema up; no restart needed
    assert _readyz(app).status_code == 200


def test_starts_while_database_down(start_app, postgres_server, app_database):
    # A release may boot before its database is reachable; it must come up unready, not crash.
    postgres_server.stop()
    try:
        app = start_app()
        assert _readyz(app).status_code == 503
    finally:
        postgres_server.start()
    app.wait_for(lambda: _readyz(app).status_code == 200, 30, "readyz 200 once the database is up")
    with httpx.Client(base_url=app.url) as client:
        assert client.post("/login", json={"username": "admin", "password": PASSWORD}).status_code == 200
