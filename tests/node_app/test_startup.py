"""Startup: a missing or malformed variable, or a log directory that cannot be written, stops the server."""
from __future__ import annotations

import json

import pytest

from tests.support.services import free_port

from .conftest import NodeApp, node_env


def _failed_start(node_release, env: dict) -> str:
    """Start with `env`; assert that the server exits 1 by itself, saying why in a JSON line; return that."""
    app = NodeApp.launch(node_release, env, wait=False)
    code, output = app.exit_output()
    assert code == 1, output
    entry = json.loads(output.strip().splitlines()[-1])
    assert entry["level"] == "error" and entry["message"].startswith("startup failed: "), entry
    return entry["message"]


@pytest.mark.parametrize("name", ["DATABASE_URL", "REDIS_URL", "SECRET_KEY"])
def test_missing_variable_exits_1_naming_it(node_release, node_database, redis_server, tmp_path, name):
    env = node_env(node_database, redis_server.url, tmp_path / "logs")
    del env[name]
    output = _failed_start(node_release, env)
    assert f"environment variable {name} is required" in output


def test_missing_port_exits_1_naming_it(node_release, node_database, redis_server, tmp_path):
    # NodeApp.launch always sets PORT; an empty one is what an unset variable looks like to the app.
    output = _failed_start(node_release, node_env(node_database, redis_server.url, tmp_path, PORT=""))
    assert "environment variable PORT is required" in output


@pytest.mark.parametrize("name, value, expected", [
    ("PORT", "http", "PORT='http': expected a TCP port (1-65535)"),
    ("PORT", "70000", "PORT='70000': expected a TCP port (1-65535)"),
    ("DATABASE_URL", "mysql://u:p@127.0.0.1/db", "DATABASE_URL: expected a URL starting postgresql:// or postgres://"),
    ("DATABASE_URL", "not a url", "DATABASE_URL: not a URL"),
    ("REDIS_URL", "http://127.0.0.1:6379", "REDIS_URL: expected a URL starting redis:// or rediss://"),
    ("APP_FAULT_ERROR_RATE", "2", "APP_FAULT_ERROR_RATE='2': expected a number between 0 and 1"),
    ("APP_FAULT_ERROR_RATE", "-0.1", "APP_FAULT_ERROR_RATE='-0.1': expected a number between 0 and 1"),
    ("APP_FAULT_ERROR_RATE", "lots", "APP_FAULT_ERROR_RATE='lots': expected a number between 0 and 1"),
    ("APP_FAULT_READINESS", "yes", "APP_FAULT_READINESS='yes': expected 1 (on) or 0 / unset (off)"),
])
def test_malformed_variable_exits_1_naming_it(node_release, node_database, redis_server, tmp_path,
                                              name, value, expected):
    output = _failed_start(node_release, node_env(node_database, redis_server.url, tmp_path, **{name: value}))
    assert expected in output


@pytest.mark.parametrize("obstacle", ["a file where the directory should be", "a directory named app.log"])
def test_unwritable_log_dir_exits_1_naming_it(node_release, node_database, redis_server, tmp_path, obstacle):
    # Tests run as root, which ignores permission bits: block the directory with things in the way.
    log_dir = tmp_path / "logs"
    if obstacle.startswith("a file"):
        log_dir.write_text("not a directory")
    else:
        (log_dir / "app.log").mkdir(parents=True)
    output = _failed_start(node_release, node_env(node_database, redis_server.url, log_dir))
    assert f"log directory {log_dir} " in output
    assert "cannot be created or written" in output


def test_missing_log_dir_is_created(start_node_app, tmp_path):
    log_dir = tmp_path / "deep" / "er" / "logs"
    app = start_node_app(APP_LOG_DIR=str(log_dir))
    app.wait_for(lambda: (log_dir / "app.log").exists(), 5, "app.log to appear")
    assert "started: release r-node" in (log_dir / "app.log").read_text()


def test_starts_while_database_is_unreachable(start_node_app, redis_server):
    app = start_node_app(database_url=f"postgresql://nobody:pw@127.0.0.1:{free_port()}/none")
    assert app._get_ok("/healthz")
