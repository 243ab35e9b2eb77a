"""The checklist and JUnit XML as a person and CI see them, from real `pytest checks/` runs."""
from __future__ import annotations

import pytest

from tests.support.sample_app import AppProcess, app_env, create_user, migrate

from .support import run_checks

PASSWORD = "check-pw-that-must-never-be-printed-7f3a"
ACCOUNTS = {"admin": {"username": "check-admin", "password": "file:CHECK_ADMIN_PASSWORD"},
            "viewer": {"username": "check-viewer", "password": "file:CHECK_VIEWER_PASSWORD"}}
SECRETS = {"CHECK_ADMIN_PASSWORD": PASSWORD, "CHECK_VIEWER_PASSWORD": PASSWORD}
HOST_CHECKS = ("test_app_host::", "test_data::", "test_host::")


def test_unreachable_stack_fails_every_check_and_writes_the_checklist(tmp_path, project, unused_port):
    root = project("down", {
        "shipshape:target": "vps",
        "shipshape:host": {"address": "127.0.0.1", "port": unused_port, "http_port": unused_port},
        "shipshape:checks": {"accounts": ACCOUNTS}}, SECRETS)
    run = run_checks(tmp_path, "down", root)
    assert run.returncode == 1, run.output
    assert run.checklist.startswith("# Post-deploy checklist: stack `down`")
    assert "**FAIL**" in run.checklist.splitlines()[2]
    for area in ("## HTTP", "## Access", "## App processes and nginx", "## Data: PostgreSQL, Redis, backups",
                 "## Host"):
        assert area in run.checklist
    assert run.outcomes["test_http::test_health"] == "failed"
    assert run.outcomes["test_host::test_secrets_file_mode"] == "error"  # no SSH: the facts fixture fails
    assert "| ERROR | Secrets file is mode 600 |" in run.checklist
    assert "| SKIP | The TLS certificate verifies" in run.checklist


def test_config_error_names_file_and_key_before_any_check(tmp_path, project):
    root = project("bad", {"shipshape:checks": {"max_latency_ms": 0}})
    run = run_checks(tmp_path, "bad", root)
    assert run.returncode != 0
    assert "Pulumi.bad.yaml: shipshape:checks.max_latency_ms = 0" in run.output
    assert not run.outcomes and not run.checklist


@pytest.fixture(scope="module")
def service(postgres_server, redis_server):
    """The sample app as a stand-in Cloud Run service: migrated, with the check accounts created."""
    url = postgres_server.create_database("checks_app")
    migrate(url)
    for role, account in ACCOUNTS.items():
        create_user(url, account["username"], role, PASSWORD)
    app = AppProcess.start(app_env(url, redis_server.url))
    yield app
    app.terminate()


def test_cloud_run_stack_checks_http_and_skips_host_with_a_reason(tmp_path, project, service, monkeypatch):
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    root = project("run", {"shipshape:target": "cloudrun", "shipshape:gcp": {"public": True},
                           "shipshape:checks": {"base_url": service.url, "accounts": ACCOUNTS}}, SECRETS)
    run = run_checks(tmp_path, "run", root)
    host = {name: o for name, o in run.outcomes.items() if name.startswith(HOST_CHECKS)}
    assert host and set(host.values()) == {"skipped"}, host
    assert "runs on Cloud Run: there is no host to check" in run.checklist
    http = {name: o for name, o in run.outcomes.items() if not name.startswith(HOST_CHECKS)}
    # The app sends its own security headers (no nginx on Cloud Run). Without Google credentials the
    # Cloud Run checks, and the version check (which release serves?), cannot read the service: they
    # fail with what to run, never pass.
    cloud = {name for name in run.outcomes if name.startswith("test_cloudrun::")}
    assert len(cloud) == 5 and run.failing() == cloud | {"test_http::test_version_is_serving_release"}, run.output
    assert "no Google credentials (Application Default Credentials) on this machine: run `gcloud auth " \
        "application-default login`" in run.checklist
    assert http["test_http::test_security_headers"] == "passed"
    assert http["test_access::test_login[viewer]"] == "passed"
    assert http["test_access::test_module_open_to_role[viewer-/api/reports]"] == "passed"
    assert http["test_access::test_module_refuses_anonymous[/api/notes]"] == "passed"
    assert run.returncode == 1


def test_passwords_never_reach_the_outputs(tmp_path, project, service):
    root = project("run", {"shipshape:target": "cloudrun",
                           "shipshape:checks": {"base_url": service.url, "accounts": ACCOUNTS}}, SECRETS)
    run = run_checks(tmp_path, "run", root)
    assert "test_access::test_login[admin]" in run.outcomes
    for text in (run.checklist, run.junit, run.output):
        assert PASSWORD not in text
