"""Fault switches: APP_FAULT_ERROR_RATE (a bad release) and APP_FAULT_READINESS (never ready)."""
from __future__ import annotations

import httpx
import pytest

from tests.support.sample_app import AppProcess, app_env

from .conftest import signed_in_client


@pytest.fixture(scope="module")
def always_failing_app(app_database, redis_server):
    """APP_FAULT_ERROR_RATE=1: every request but the probes answers 500."""
    app = AppProcess.start(app_env(app_database, redis_server.url, APP_FAULT_ERROR_RATE="1"))
    yield app
    app.terminate()


@pytest.mark.parametrize("path, expected", [
    ("/", 500), ("/api/notes", 500), ("/login", 500),
    ("/healthz", 200), ("/readyz", 200), ("/version", 200), ("/metrics", 200),
])
def test_error_rate_one_fails_everything_but_probes(always_failing_app, path, expected):
    method = "POST" if path == "/login" else "GET"
    response = httpx.request(method, always_failing_app.url + path, json={"username": "admin", "password": "x"})
    assert response.status_code == expected


def test_partial_error_rate_fails_about_that_fraction(start_app):
    app = start_app(APP_FAULT_ERROR_RATE="0.5")
    with httpx.Client(base_url=app.url) as client:
        statuses = [client.get("/").status_code for _ in range(200)]
    failures = statuses.count(500)
    assert set(statuses) == {200, 500}
    assert 50 < failures < 150  # binomial(200, 0.5): outside this range has odds below 1e-12


def test_error_rate_zero_by_default(running_app):
    with signed_in_client(running_app, "admin") as client:
        assert {client.get("/api/notes").status_code for _ in range(30)} == {200}


def test_faulted_requests_are_counted_in_metrics(always_failing_app):
    def count() -> float:
        metrics = httpx.get(always_failing_app.url + "/metrics").text
        key = 'app_requests_total{method="GET",path="/api/projects",status="500"} '
        return next((float(l[len(key):]) for l in metrics.splitlines() if l.startswith(key)), 0.0)

    before = count()
    for _ in range(3):
        assert httpx.get(always_failing_app.url + "/api/projects").status_code == 500
    assert count() == before + 3


def test_readiness_fault_answers_503_while_alive(start_app):
    app = start_app(APP_FAULT_READINESS="1")
    response = httpx.get(app.url + "/readyz")
    assert (response.status_code, response.json()) == (
        503, {"status": "unready", "reason": "fault: APP_FAULT_READINESS=1"})
    assert httpx.get(app.url + "/healthz").status_code == 200


@pytest.mark.parametrize("value", ["2", "-0.1", "lots"])
def test_invalid_error_rate_refuses_to_start(start_app, value):
    with pytest.raises(RuntimeError) as failure:
        start_app(APP_FAULT_ERROR_RATE=value)
    # uvicorn's exit status for a failed lifespan startup; the log names the variable.
    assert "app exited 3 " in str(failure.value)
    assert f"APP_FAULT_ERROR_RATE='{value}': expected a number between 0 and 1" in str(failure.value)
