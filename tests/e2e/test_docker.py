"""The docker runtime end to end: the Python sample as containers on a real dockerd (the `docker_host`
engine), built with another (`docker_build`), shipped layer by layer over SSH, canaried behind nginx.
Tests run in order and build on each other (one stack, tests/e2e/conftest.py DOCKER)."""
from __future__ import annotations

import json
import re

import pytest

from tests.checks.support import run_checks
from tests.e2e.conftest import DOCKER, Load, deploy_killed_at, host_sh, wait_for

pytestmark = [pytest.mark.timeout(900), pytest.mark.docker]
ROOT = DOCKER["root"]
APP = "dsample"


def served_sha(stack) -> str:
    status, body = stack.http("/version")
    assert status == 200, body
    return json.loads(body)["git_sha"]


def slots() -> dict:
    return json.loads(host_sh(f"cat {ROOT}/state/slots.json"))


def history() -> list[dict]:
    return [json.loads(line) for line in host_sh(f"cat {ROOT}/state/history.jsonl").splitlines()]


def inspect(engine, name: str) -> dict:
    return json.loads(engine.cli("inspect", name).stdout)[0]


def pins(engine) -> set[str]:
    out = engine.cli("images", "--format", "{{.Tag}}", f"shipshape/{APP}").stdout
    return set(out.split())


def test_setup_starts_nothing_of_pm2_and_is_idempotent(docker_stack):
    second = docker_stack.fab("setup")
    assert "nothing to change" in second.stderr, second.stderr
    assert host_sh(f"pgrep -u {DOCKER['app_user']} -f PM2 || true").strip() == ""


def test_build_makes_the_image_once_per_sha(docker_stack, docker_build):
    docker_stack.commit("docker e2e: v1")
    first = docker_stack.fab("build")
    again = docker_stack.fab("build")
    assert "already built (no-op)" in again.stderr, again.stderr
    artifact = next((docker_stack.root / ".build").glob("*.tar.gz"))
    assert "Step 1/" in first.stderr or "already built" in first.stderr  # the engine's own build output
    image = json.loads(host_sh(f"tar -xOzf {artifact} RELEASE"))["image"]
    assert docker_build.cli("image", "inspect", "--format", "{{.Id}}", image).stdout.strip() == image


def test_deploy_runs_the_release_as_containers(docker_stack, docker_host):
    sha = docker_stack.commit("docker e2e: v2")
    out = docker_stack.fab("deploy").stderr
    assert served_sha(docker_stack) == sha
    assert re.search(r"image: (\d+ of \d+ layers sent|whole image sent|already on the host)", out), out
    live = slots()["live"]
    container = inspect(docker_host, f"{APP}-{live}")
    uid = host_sh(f"id -u {DOCKER['app_user']}").strip()
    assert container["State"]["Running"]
    assert container["HostConfig"]["NetworkMode"] == "host"
    assert container["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert container["Config"]["StopTimeout"] == 25
    assert container["Config"]["User"].split(":")[0] == uid  # the app user, never root
    release = slots()["slots"][live]["release"]
    assert host_sh(f"stat -c %a {ROOT}/releases/{release}/.docker.env").strip() == "600"
    assert f"{release}" in pins(docker_host)


def test_second_release_sends_only_the_changed_layers_under_load_then_rollback(docker_stack):
    v1 = served_sha(docker_stack)
    v2 = docker_stack.commit("docker e2e: code only", {"app/VERSION_NOTE.txt": "3\n"})
    with Load(get=docker_stack.http) as load:
        out = docker_stack.fab("deploy").stderr
    sent = re.search(r"image: (\d+) of (\d+) layers sent", out)
    assert sent and 0 < int(sent.group(1)) < int(sent.group(2)), out
    assert "10%:" in out and "50%:" in out
    assert all(status == 200 for status, _ in load.results), {s for s, _ in load.results}
    assert load.shas() == {v1, v2}
    rolled = docker_stack.fab("rollback")
    assert served_sha(docker_stack) == v1 and "not warm" not in rolled.stderr  # the warm container
    v2_release = next(e["release"] for e in reversed(history()) if e["git_sha"] == v2)
    docker_stack.fab("rollback", "--to", v2_release)
    assert served_sha(docker_stack) == v2


def test_bad_release_is_rolled_back_by_the_canary_gate(docker_stack):
    before = served_sha(docker_stack)
    docker_stack.commit("docker e2e: bad", {"shipshape.env": "APP_FAULT_ERROR_RATE=0.6\n"})
    with Load("/api/notes", get=docker_stack.http):
        failed = docker_stack.fab("deploy", check=False)
    assert failed.returncode == 1 and "failed at step canary" in failed.stderr, failed.stderr
    assert served_sha(docker_stack) == before and history()[-1]["outcome"] == "rolled_back"
    docker_stack.commit("docker e2e: good again", remove=("shipshape.env",))


def test_a_container_that_never_gets_ready_prints_its_own_output(docker_stack):
    before = served_sha(docker_stack)
    docker_stack.commit("docker e2e: never ready", {"shipshape.env": "APP_FAULT_READINESS=1\n"})
    failed = docker_stack.fab("deploy", check=False)
    assert failed.returncode == 1 and "failed at step start" in failed.stderr, failed.stderr
    assert f"logs {APP}-" in failed.stderr  # where the full log is
    assert '"message"' in failed.stderr     # the app's own JSON log lines
    assert served_sha(docker_stack) == before
    docker_stack.commit("docker e2e: ready again", remove=("shipshape.env",))


@pytest.mark.parametrize("marker", ["==> upload", "==> canary"])
def test_sigkill_mid_transfer_or_canary_leaves_the_site_serving(docker_stack, marker):
    before = served_sha(docker_stack)
    docker_stack.commit(f"docker e2e: killed at {marker}", {"app/VERSION_NOTE.txt": marker + "\n"})
    deploy_killed_at(docker_stack, marker)
    assert docker_stack.http("/healthz")[0] == 200
    assert served_sha(docker_stack) in {before, *host_sh(f"git -C {docker_stack.clone} log --format=%H -n 2").split()}
    docker_stack.fab("unlock", "--force", check=False)
    docker_stack.fab("deploy")
    assert docker_stack.http("/readyz")[0] == 200


def test_retention_never_removes_an_image_a_kept_release_needs(docker_stack, docker_host):
    for n in range(3):
        docker_stack.commit(f"docker e2e: retention {n}", {"app/VERSION_NOTE.txt": f"r{n}\n"})
        docker_stack.fab("deploy")
    kept = set(host_sh(f"ls {ROOT}/releases").split())
    assert len(kept) == 5, kept
    assert pins(docker_host) == kept  # one pin per kept release, none for a pruned one
    for release in kept:
        image = json.loads(host_sh(f"cat {ROOT}/releases/{release}/RELEASE"))["image"]
        assert docker_host.cli("image", "inspect", image, check=False).returncode == 0, release
    oldest = min(kept)
    docker_stack.fab("rollback", "--to", oldest)  # the oldest kept release still starts from its image
    assert served_sha(docker_stack) == json.loads(host_sh(f"cat {ROOT}/releases/{oldest}/RELEASE"))["sha"]
    docker_stack.fab("deploy")


def test_the_checks_pass_on_containers(docker_stack, tmp_path):
    run = run_checks(tmp_path, "local", docker_stack.root)
    assert not run.failing(), run.checklist
    assert run.with_outcome("passed") >= {"test_app_host::test_app_processes_online",
                                           "test_app_host::test_app_not_crash_looping",
                                           "test_app_host::test_serving_port_loopback_only"}


def _live_container() -> str:
    return f"{APP}-{slots()['live']}"


def test_a_stopped_container_fails_the_process_and_port_checks(docker_stack, docker_host, tmp_path):
    name = _live_container()
    docker_host.cli("stop", "-t", "5", name)
    try:
        run = run_checks(tmp_path, "local", docker_stack.root)
    finally:
        docker_host.cli("start", name)
        wait_for(lambda: docker_stack.http("/readyz")[0] == 200)
    failing = set(run.failing())
    assert {"test_app_host::test_app_processes_online", "test_app_host::test_serving_port_loopback_only"} <= failing
    assert "test_app_host::test_app_not_crash_looping" not in failing


def test_a_crash_looping_container_fails_the_restart_check(docker_stack, docker_host, tmp_path):
    name = _live_container()
    for _ in range(4):  # the engine brings it back each time (restart policy unless-stopped)
        state = wait_for(lambda: (lambda c: c if c["State"]["Running"] and c["State"]["Pid"] > 0 else None)(
            inspect(docker_host, name)), timeout=30)
        before, pid = state["RestartCount"], state["State"]["Pid"]
        host_sh(f"kill -9 {int(pid)}")  # a real pid: `kill -9 0` would kill this test's process group
        wait_for(lambda: inspect(docker_host, name)["RestartCount"] > before and
                 inspect(docker_host, name)["State"]["Running"], timeout=30)
    wait_for(lambda: docker_stack.http("/readyz")[0] == 200)
    run = run_checks(tmp_path, "local", docker_stack.root)
    assert "test_app_host::test_app_not_crash_looping" in run.failing(), run.checklist
    assert not [c for c in run.failing() if not c.startswith(("test_app_host::test_app_not", "test_http::"))]
    docker_stack.fab("restart")  # fresh containers: counts from zero
    (tmp_path / "after").mkdir()
    assert not run_checks(tmp_path / "after", "local", docker_stack.root).failing()


def test_no_secret_in_image_history_layers_build_output_or_logs(docker_stack, docker_host, docker_build, tmp_path):
    values = [line.partition("=")[2] for line in host_sh(f"cat {ROOT}/shared/secrets.env").splitlines()]
    values += [line.partition("=")[2] for line in (docker_stack.root / ".secrets/local.env").read_text().splitlines()]
    values = [v for v in values if len(v) >= 8]
    assert len(values) >= 8
    live = slots()["slots"][slots()["live"]]["release"]
    image = json.loads(host_sh(f"cat {ROOT}/releases/{live}/RELEASE"))["image"]
    history_text = docker_host.cli("history", "--no-trunc", image).stdout
    layers = tmp_path / "image.tar"
    docker_host.cli("save", "-o", str(layers), image)
    raw = layers.read_bytes()
    logs = "".join(docker_host.cli("logs", name, check=False).stdout + docker_host.cli("logs", name, check=False).stderr
                   for name in (f"{APP}-a", f"{APP}-b"))
    text = "\n".join(docker_stack.outputs) + history_text + logs + host_sh(
        f"cat {ROOT}/state/history.jsonl {ROOT}/nginx/*.log {ROOT}/logs/* 2>/dev/null || true")
    leaked = [v[:4] + "..." for v in values if v in text or v.encode() in raw]
    assert not leaked, f"secrets found: {leaked}"
