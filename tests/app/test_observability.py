"""/healthz, /version, /metrics, the static front end, and JSON logs on stdout."""
from __future__ import annotations

import httpx
import pytest

from .conftest import signed_in_client


def test_healthz(running_app):
    response = httpx.get(running_app.url + "/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_version_reports_release_and_sha(running_app):
    response = httpx.get(running_app.url + "/version")
    assert (response.status_code, response.json()) == (200, {"release": "r-test", "git_sha": "0123abc"})


def test_index_is_the_static_front_end(running_app):
    response = httpx.get(running_app.url + "/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<h1 id="title">shipshape sample app</h1>' in response.text


@pytest.mark.parametrize("path", ["/", "/api/notes", "/healthz"])
def test_answers_carry_security_headers_once(running_app, path):
    # On Cloud Run no nginx adds them (checks/test_http.py asks for them wherever the app runs).
    response = httpx.get(running_app.url + path)
    assert response.headers.get_list("x-frame-options") == ["DENY"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"] == "default-src 'self'; frame-ancestors 'none'"
    assert response.headers["referrer-policy"] == "strict-origin-when-cross-origin"


def test_metrics_count_requests_by_status_and_record_latency(running_app):
    httpx.get(running_app.url + "/api/reports")  # anonymous: a 401 to count
    response = httpx.get(running_app.url + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'app_requests_total{method="GET",path="/api/reports",status="401"}' in text
    assert 'app_request_duration_seconds_bucket{le="0.005",method="GET",path="/api/reports"}' in text


def test_unknown_paths_fold_into_one_metric_label(running_app):
    for i in range(3):
        assert httpx.get(f"{running_app.url}/no/such/page/{i}").status_code == 404
    text = httpx.get(running_app.url + "/metrics").text
    assert 'path="other",status="404"' in text
    assert "/no/such/page" not in text


@pytest.mark.parametrize("field, kind", [
    ("time", str), ("level", str), ("message", str), ("method", str), ("path", str),
    ("status", int), ("duration_ms", float),
])
def test_request_log_lines_are_json_with_fields(running_app, field, kind):
    since = running_app.mark()
    with signed_in_client(running_app, "member") as client:
        client.get("/api/notes")
    line = running_app.request_line("/api/notes", since)
    assert isinstance(line[field], kind)


def test_every_stdout_line_is_json(running_app):
    httpx.get(running_app.url + "/healthz")
    logs = running_app.json_logs()  # raises on the first non-JSON line
    assert any(entry["message"].startswith("started: release r-test") for entry in logs)
    assert all({"time", "level", "message"} <= entry.keys() for entry in logs)
