"""The Node + TypeScript sample (examples/node-app) released end to end on a stack of its own, configured
only through its stack file (tests/e2e/conftest.py NODE_APP): built by `app.build`, dependencies from
its lockfile on the host, node-pg-migrate, a shared logs/ directory. Tests build on each other, in order."""
from __future__ import annotations

import json

import pytest
import requests

from tests.checks.support import run_checks
from tests.e2e.conftest import NODE, NODE_STATIC, Load, host_sh

pytestmark = pytest.mark.timeout(600)
ROOT = NODE["root"]


def served_sha(stack) -> str:
    status, body = stack.http("/version")
    assert status == 200, body
    return json.loads(body)["git_sha"]


def history() -> list[dict]:
    return [json.loads(line) for line in host_sh(f"cat {ROOT}/state/history.jsonl").splitlines()]


def log_lines() -> int:
    return int(host_sh(f"cat {ROOT}/shared/logs/app.log | wc -l").strip())


def test_node_app_deploys_with_its_own_build_deps_and_migrations(node_stack):
    sha = node_stack.commit("node e2e: v1")
    out = node_stack.fab("deploy").stderr
    assert served_sha(node_stack) == sha
    assert node_stack.http("/readyz")[0] == 200
    assert "(node: dependencies" in out  # installed now, or reused from an earlier run of this stack
    assert "dependencies installed" in out or "dependencies reused" in out
    release = json.loads(host_sh(f"cat {ROOT}/state/slots.json"))["slots"]["a"]["release"]
    assert host_sh(f"readlink {ROOT}/releases/{release}/node_modules").strip().startswith(f"{ROOT}/npm/")
    assert host_sh(f"test -f {ROOT}/releases/{release}/dist/server.js && echo built").strip() == "built"
    # The app writes logs/ in its working directory: a link to the shared dir, the app user's.
    assert host_sh(f"readlink {ROOT}/releases/{release}/logs").strip() == f"{ROOT}/shared/logs"
    assert host_sh(f"stat -c %U {ROOT}/shared/logs/app.log").strip() == NODE["app_user"]


def test_second_version_canary_under_load_then_rollback_and_rollback_to(node_stack):
    v1, lines = served_sha(node_stack), log_lines()
    v2 = node_stack.commit("node e2e: v2", {"VERSION": "2\n"})
    with Load(get=node_stack.http) as load:
        out = node_stack.fab("deploy").stderr
    assert "10%:" in out and "50%:" in out and "dependencies reused" in out
    assert all(status == 200 for status, _ in load.results), {s for s, _ in load.results}
    assert load.shas() == {v1, v2}
    assert log_lines() > lines  # the shared log kept growing across releases
    node_stack.fab("rollback")
    assert served_sha(node_stack) == v1
    v2_release = next(e["release"] for e in reversed(history()) if e["git_sha"] == v2)
    node_stack.fab("rollback", "--to", v2_release)
    assert served_sha(node_stack) == v2


def test_bad_release_is_rolled_back_by_the_canary_gate(node_stack):
    before = served_sha(node_stack)
    node_stack.commit("node e2e: bad", {"shipshape.env": "APP_FAULT_ERROR_RATE=0.6\n"})
    with Load("/api/notes", get=node_stack.http):
        failed = node_stack.fab("deploy", check=False)
    assert failed.returncode == 1 and "failed at step canary" in failed.stderr, failed.stderr
    assert served_sha(node_stack) == before and history()[-1]["outcome"] == "rolled_back"
    node_stack.commit("node e2e: good again", remove=("shipshape.env",))


def test_a_release_that_cannot_start_prints_its_own_error(node_stack):
    before = served_sha(node_stack)
    node_stack.commit("node e2e: unwritable logs", {"shipshape.env": "APP_LOG_DIR=/root/shipshape-logs\n"})
    failed = node_stack.fab("deploy", check=False)
    assert failed.returncode == 1 and "failed at step start" in failed.stderr, failed.stderr
    assert "/root/shipshape-logs" in failed.stderr  # the app's own message, from its log
    assert f"full log: 127.0.0.1:{ROOT}/logs/nodesample-" in failed.stderr
    assert served_sha(node_stack) == before
    node_stack.commit("node e2e: logs back", remove=("shipshape.env",))


def test_nginx_serves_the_static_dir_itself_with_cache_and_security_headers(node_stack):
    asset = "app.5e1f0c3a.css"  # a hex run of 8 between dots: a hashed name
    node_stack.commit("node e2e: a hashed asset", {f"public/{asset}": "body { margin: 0 }\n"})
    node_stack.fab("deploy")
    slots = json.loads(host_sh(f"cat {ROOT}/state/slots.json"))
    release = slots["slots"][slots["live"]]["release"]
    assert host_sh(f"readlink {ROOT}/static/slot-{slots['live']}").strip() == release
    assert host_sh(f"stat -c '%a %U' {ROOT}/static/{release}/{asset}").split() == ["644", "root"]
    url = node_stack.site + NODE_STATIC["url"]
    hashed, page = requests.get(url + asset, timeout=5), requests.get(url + "index.html", timeout=5)
    assert (hashed.status_code, hashed.text, hashed.headers["Content-Type"]) == (200, "body { margin: 0 }\n", "text/css")
    assert hashed.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert (page.status_code, page.headers["Cache-Control"]) == (200, "no-cache")
    for response in (hashed, page):
        assert response.headers["X-Frame-Options"] == "DENY" and response.headers["X-Content-Type-Options"] == "nosniff"
    assert requests.get(url + "missing.5e1f0c3a.css", timeout=5).status_code == 404
    # nginx answered from the files: no upstream in its access log, nothing in the app's own log
    served = [line.split("\t") for line in host_sh(f"cat {ROOT}/nginx/access.log").splitlines()
              if NODE_STATIC["url"] in line]
    assert served and {fields[1] for fields in served} == {"-"}
    assert NODE_STATIC["url"] not in host_sh(f"cat {ROOT}/shared/logs/app.log")


def test_the_checks_pass_on_the_node_app(node_stack, tmp_path):
    node_stack.fab("deploy")
    run = run_checks(tmp_path, "local", node_stack.root)
    assert not run.failing(), run.checklist
    assert run.with_outcome("passed") >= {"test_http::test_site_reachable", "test_data::test_redis_answers",
                                           "test_app_host::test_app_processes_online"}
    skipped = run.with_outcome("skipped")
    assert "test_data::test_migrations_at_head" in skipped  # not Alembic: readiness covers the schema
    secrets = [line.partition("=")[2] for line in host_sh(f"cat {ROOT}/shared/secrets.env").splitlines()]
    text = "\n".join(node_stack.outputs) + run.checklist + host_sh(f"cat {ROOT}/logs/* {ROOT}/shared/logs/* || true")
    assert not [s[:4] for s in secrets if len(s) >= 8 and s in text]
