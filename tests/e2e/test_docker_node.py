"""The Node sample as containers (examples/node-app/Dockerfile: `npm ci` and `tsc` run inside the image
build, so the stack sets no app.build): deployed, a second version under load, rollback, checks."""
from __future__ import annotations

import json

import pytest

from tests.checks.support import run_checks
from tests.e2e.conftest import DOCKER_NODE, Load, host_sh

pytestmark = [pytest.mark.timeout(900), pytest.mark.docker]
ROOT = DOCKER_NODE["root"]


def served_sha(stack) -> str:
    status, body = stack.http("/version")
    assert status == 200, body
    return json.loads(body)["git_sha"]


def test_node_sample_deploys_as_containers_with_its_migrations(docker_node_stack, docker_host):
    sha = docker_node_stack.commit("docker node e2e: v1")
    docker_node_stack.fab("deploy")
    assert served_sha(docker_node_stack) == sha and docker_node_stack.http("/readyz")[0] == 200
    live = json.loads(host_sh(f"cat {ROOT}/state/slots.json"))["live"]
    container = json.loads(docker_host.cli("inspect", f"dnode-{live}").stdout)[0]
    assert container["State"]["Running"] and container["HostConfig"]["NetworkMode"] == "host"
    # The app writes logs/ in its working directory: the shared dir, mounted, owned by the app user.
    assert host_sh(f"stat -c %U {ROOT}/shared/logs/app.log").strip() == DOCKER_NODE["app_user"]


def test_second_version_under_load_then_rollback(docker_node_stack):
    v1 = served_sha(docker_node_stack)
    v2 = docker_node_stack.commit("docker node e2e: v2", {"public/VERSION_NOTE.txt": "2\n"})
    with Load(get=docker_node_stack.http) as load:
        out = docker_node_stack.fab("deploy").stderr
    assert "layers sent" in out, out
    assert all(status == 200 for status, _ in load.results), {s for s, _ in load.results}
    assert load.shas() == {v1, v2}
    docker_node_stack.fab("rollback")
    assert served_sha(docker_node_stack) == v1


def test_the_checks_pass_on_the_node_containers(docker_node_stack, tmp_path):
    docker_node_stack.fab("deploy")
    run = run_checks(tmp_path, "local", docker_node_stack.root)
    assert not run.failing(), run.checklist
