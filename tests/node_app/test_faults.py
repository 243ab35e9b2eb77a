"""Fault switches: APP_FAULT_ERROR_RATE (a bad release) and APP_FAULT_READINESS (never ready)."""
from __future__ import annotations

import re

import httpx
import pytest

from .conftest import NodeApp, node_env, signed_in


@pytest.fixture(scope="module")
def always_failing_app(node_release, node_database, redis_server, tmp_path_factory):
    """APP_FAULT_ERROR_RATE=1: every request but the probes answers 500."""
    app = NodeApp.launch(node_release, node_env(node_database, redis_server.url,
                                                tmp_path_factory.mktemp("faulty-logs"), APP_FAULT_ERROR_RATE="1"))
    yield app
    app.terminate()


@pytest.mark.parametrize("method, path, expected", [
    ("GET", "/", 500), ("GET", "/api/notes", 500), ("POST", "/login", 500), ("GET", "/no/such", 500),
    ("GET", "/healthz", 200), ("GET", "/readyz", 200), ("GET", "/version", 200), ("GET", "/metrics", 200),
])
def test_error_rate_one_fails_everything_but_probes(always_failing_app, method, path, expected):
    response = httpx.request(method, always_failing_app.url + path, json={"username": "admin", "password": "x"})
    assert response.status_code == expected
    if expected == 500:
        assert response.json() == {"error": "injected fault (APP_FAULT_ERROR_RATE)"}


def test_partial_error_rate_fails_about_that_fraction(start_node_app):
    app = start_node_app(APP_FAULT_ERROR_RATE="0.5")
    with httpx.Client(base_url=app.url) as client:
        statuses = [client.get("/").status_code for _ in range(200)]
    assert set(statuses) == {200, 500}
    assert 50 < statuses.count(500) < 150  # binomial(200, 0.5): outside this range has odds below 1e-12


def test_error_rate_zero_by_default(running_node_app):
    with signed_in(running_node_app, "admin") as client:
        assert {client.get("/api/notes").status_code for _ in range(30)} == {200}


def test_faulted_requests_are_counted_and_logged(always_failing_app):
    def count() -> float:
        text = httpx.get(always_failing_app.url + "/metrics").text
        match = re.search(r'^app_requests_total\{method="GET",path="/api/projects",status="500"\} (\S+)', text, re.M)
        return float(match.group(1)) if match else 0.0

    before = count()
    for _ in range(3):
        assert httpx.get(always_failing_app.url + "/api/projects").status_code == 500
    assert count() == before + 3
    assert any(e.get("path") == "/api/projects" and e.get("status") == 500 for e in always_failing_app.json_logs())


def test_readiness_fault_answers_503_while_alive(start_node_app):
    app = start_node_app(APP_FAULT_READINESS="1")
    response = httpx.get(app.url + "/readyz")
    assert (response.status_code, response.json()) == (
        503, {"status": "unready", "reason": "fault: APP_FAULT_READINESS=1"})
    assert httpx.get(app.url + "/healthz").status_code == 200


def test_readiness_fault_off_with_zero(start_node_app):
    assert httpx.get(start_node_app(APP_FAULT_READINESS="0").url + "/readyz").status_code == 200
