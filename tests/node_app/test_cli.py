"""The create-user CLI, run as the stack's create_account command: creates, updates, refuses bad input."""
from __future__ import annotations

import httpx
import pytest

from tests.support.services import free_port

from .conftest import CREATE_ACCOUNT, create_account, sh


def _login(app, username: str, password: str) -> httpx.Response:
    return httpx.post(app.url + "/login", json={"username": username, "password": password})


def test_creates_then_updates(node_release, node_database, running_node_app):
    created = create_account(node_release, node_database, "carol", "viewer", "first password")
    assert created.stdout.strip() == "created user carol (viewer)"
    assert _login(running_node_app, "carol", "first password").json() == {"username": "carol", "role": "viewer"}

    updated = create_account(node_release, node_database, "carol", "member", "second password")
    assert updated.stdout.strip() == "updated user carol (member)"
    assert _login(running_node_app, "carol", "first password").status_code == 401
    assert _login(running_node_app, "carol", "second password").json() == {"username": "carol", "role": "member"}


@pytest.mark.parametrize("username, role, password, message", [
    ("dave", "boss", "pw", "--role 'boss': expected one of admin, member, viewer"),
    ("", "viewer", "pw", "--username: expected 1-150 characters"),
    ("two words", "viewer", "pw", "--username: expected 1-150 characters"),
    ("dave", "viewer", "", "APP_USER_PASSWORD is not set"),
])
def test_bad_input_exits_2_with_a_message(node_release, node_database, username, role, password, message):
    proc = create_account(node_release, node_database, username, role, password, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert "usage: node dist/cli.js create-user" in proc.stderr


@pytest.mark.parametrize("args, message", [
    ("", "unknown command '': expected create-user"),
    ("delete-user --username x", "unknown command 'delete-user': expected create-user"),
    ("create-user --username x --role viewer --admin", "Unknown option '--admin'"),
])
def test_bad_arguments_exit_2(node_release, node_database, args, message):
    proc = sh(node_release, f"node dist/cli.js {args}", {"DATABASE_URL": node_database, "APP_USER_PASSWORD": "pw"},
              check=False)
    assert (proc.returncode, message in proc.stderr) == (2, True), proc.stderr


def test_missing_database_url_exits_2_naming_it(node_release):
    proc = sh(node_release, CREATE_ACCOUNT, {"DATABASE_URL": "", "ACCOUNT_USERNAME": "erin",
                                             "ACCOUNT_ROLE": "viewer", "ACCOUNT_PASSWORD": "pw"}, check=False)
    assert proc.returncode == 2
    assert "environment variable DATABASE_URL is required" in proc.stderr


def test_unreachable_database_exits_1(node_release):
    proc = sh(node_release, CREATE_ACCOUNT, {"DATABASE_URL": f"postgresql://a:b@127.0.0.1:{free_port()}/c",
                                             "ACCOUNT_USERNAME": "erin", "ACCOUNT_ROLE": "viewer",
                                             "ACCOUNT_PASSWORD": "pw"}, check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("create-user failed: ")
