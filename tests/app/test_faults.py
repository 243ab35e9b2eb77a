"""Fault switches: APP_FAULT_ERROR_RATE (a bad release) and APP_FAULT_READINESS (never ready)."""
from __future__ import annotations

import httpx
import pytest

from .conftest import signed_in_client

PROBES = ("/healthz", "/readyz", "/version", "/metrics")


@pytest.mark.parametrize("path, expected", [
    ("/", 500), ("/api/notes", 500), ("/login", 500),
    ("/healthz", 200), ("/readyz", 200), ("/version", 200), ("/metrics", 200),
])
def test_error_rate_one_fails_everything_but_probes(start_app, path, expected):
    app = start_app(APP_FAULT_ERROR_RATE="1")
    method = "POST" if path == "/login" else "GET"
    response = httpx.request(method, app.url + path, json={"username": "admin", "password": "x"})
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


def test_faulted_requests_are_counted_in_metrics(start_app):
    app = start_app(APP_FAULT_ERROR_RATE="1")
    for _ in range(3):
        httpx.get(app.url + "/api/projects")
    metrics = httpx.get(app.url + "/metrics").text
    assert 'app_requests_total{method="GET",path="/api/projects",status="500"} 3.0' in metrics


def test_readiness_fault_answers_503_while_alive(start_app):
    app = start_app(APP_FAULT_READINESS="1")
    response = httpx.get(app.url + "/readyz")
    assert (response.status_code, response.json()) == (
        503, {"status": "unready", "reason": "fault: APP_FAULT_READINESS=1"})
    assert httpx.get(app.url + "/healthz").status_code == 200


@pytest.mark.parametrize("value", ["2", "-0.1", "lots"])
def test_invalid_error_rate_refuses_to_start(start_app, value):
    with pytest.raises(RuntimeError, match=f"APP_FAULT_ERROR_RATE='{value}'"):
        start_app(APP_FAULT_ERROR_RATE=value)
