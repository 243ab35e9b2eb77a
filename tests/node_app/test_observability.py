"""/healthz, /version, /metrics, the static front end, and JSON log lines on stdout and in app.log."""
from __future__ import annotations

import json
import re
from datetime import datetime

import httpx

from tests.support.services import free_port

from .conftest import signed_in


def test_healthz(running_node_app):
    response = httpx.get(running_node_app.url + "/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_answers_carry_security_headers_once(running_node_app):
    # On Cloud Run no nginx adds them (checks/test_http.py asks for them wherever the app runs).
    for path in ("/", "/api/notes", "/healthz", "/nowhere"):
        response = httpx.get(running_node_app.url + path)
        assert response.headers.get_list("x-frame-options") == ["DENY"], path
        assert response.headers["content-security-policy"] == "default-src 'self'; frame-ancestors 'none'"
        assert response.headers["x-content-type-options"] == "nosniff"


def test_version_reports_release_and_sha(running_node_app):
    response = httpx.get(running_node_app.url + "/version")
    assert (response.status_code, response.json()) == (200, {"release": "r-node", "git_sha": "4567def"})


def test_version_defaults_when_unset(start_node_app):
    app = start_node_app(RELEASE_ID="", GIT_SHA="")
    assert httpx.get(app.url + "/version").json() == {"release": "dev", "git_sha": "unknown"}


def test_index_is_the_static_front_end(running_node_app):
    response = httpx.get(running_node_app.url + "/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert '<h1 id="title">shipshape sample app</h1>' in response.text


def test_metrics_count_requests_by_status_and_record_latency(running_node_app):
    httpx.get(running_node_app.url + "/api/reports")  # anonymous: a 401 to count
    response = httpx.get(running_node_app.url + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert "# TYPE app_requests_total counter" in text
    assert "# TYPE app_request_duration_seconds histogram" in text
    assert re.search(r'^app_requests_total\{method="GET",path="/api/reports",status="401"\} [1-9]', text, re.M)
    assert 'app_request_duration_seconds_bucket{le="0.005",method="GET",path="/api/reports"}' in text


def test_unknown_paths_fold_into_one_metric_label(running_node_app):
    for i in range(3):
        assert httpx.get(f"{running_node_app.url}/no/such/page/{i}").status_code == 404
    text = httpx.get(running_node_app.url + "/metrics").text
    assert 'path="other",status="404"' in text
    assert "/no/such/page" not in text


def test_request_log_line_fields(running_node_app):
    since = running_node_app.mark()
    with signed_in(running_node_app, "member") as client:
        client.get("/api/projects?page=1")
    line = running_node_app.request_line("/api/projects", since)
    assert (line["level"], line["method"], line["status"]) == ("info", "GET", 200)
    assert isinstance(line["duration_ms"], (int, float)) and line["duration_ms"] >= 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"]), line["time"]
    assert datetime.fromisoformat(line["time"].replace("Z", "+00:00")).utcoffset().total_seconds() == 0


def test_every_stdout_line_is_json(running_node_app):
    httpx.get(running_node_app.url + "/healthz")
    logs = running_node_app.json_logs()  # raises on the first line that is not JSON
    assert any(e["message"].startswith("started: release r-node (4567def)") for e in logs)
    assert all({"time", "level", "message"} <= e.keys() for e in logs)


def test_app_log_gets_the_same_lines_as_stdout(start_node_app, tmp_path):
    log_dir = tmp_path / "applogs"
    app = start_node_app(APP_LOG_DIR=str(log_dir))
    httpx.get(app.url + "/version")
    app.request_line("/version")
    assert app.terminate() == 0
    in_file = (log_dir / "app.log").read_text().splitlines()
    assert in_file == [line for line in app.lines if line.strip()]
    assert [json.loads(line)["message"] for line in in_file][-1] == \
        "shutdown complete: database pool and redis client closed"


def test_default_log_dir_is_logs_in_the_working_directory(start_node_app, node_release):
    app = start_node_app(APP_LOG_DIR="")
    httpx.get(app.url + "/version?default-log-dir")
    app.request_line("/version")
    started = next(e["time"] for e in app.json_logs() if e["message"].startswith("started"))
    log_file = node_release / "logs" / "app.log"
    assert any(json.loads(line)["time"] == started for line in log_file.read_text().splitlines())


def test_failed_dependency_answers_500_and_logs_the_error(start_node_app):
    app = start_node_app(database_url=f"postgresql://app:pw@127.0.0.1:{free_port()}/app")
    response = httpx.post(app.url + "/login", json={"username": "admin", "password": "x"})
    assert (response.status_code, response.json()) == (500, {"error": "internal error"})
    errors = [e for e in app.json_logs() if e["message"] == "request failed"]
    assert errors and "ECONNREFUSED" in errors[-1]["error"]
