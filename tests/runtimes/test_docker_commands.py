"""Pure tests: the docker runtime's command builders (exact shell text), status parser and for_stack."""
from __future__ import annotations

import json

from shipshape.config import Stack
from shipshape.layout import Layout
from shipshape.remote import render
from shipshape.runtimes import ProcessState, Release, Slot, for_stack
from shipshape.runtimes.docker import Docker

STACK = Stack.model_validate({
    "name": "t", "source": "Pulumi.t.yaml", "runtime": "docker",
    "app": {"name": "web", "start": "uvicorn app.main:app --host 127.0.0.1 --port $PORT", "shared_dirs": ["logs"]},
    "host": {"app_user": "shipshape"}, "docker": {"socket": "/run/d.sock", "stop_timeout": 31}})
LAYOUT = Layout("/srv/s")
DOCKER = for_stack(STACK, LAYOUT)
RELEASE = Release("20261121-abc", "/srv/s/releases/20261121-abc", "abc", "python", "h1",
                  image="sha256:" + "f" * 64, workdir="/app")
D = "docker -H unix:///run/d.sock"
RUN_ARGS = ('--network host --user "$(id -u shipshape):$(id -g shipshape)" --env-file '
            "/srv/s/releases/20261121-abc/.docker.env -e RELEASE_ID=20261121-abc -e GIT_SHA=abc "
            "-v /srv/s/shared/logs:/app/logs --label shipshape.app=web --label shipshape.release=20261121-abc")
MERGE = "(umask 077; python3 -c "


def test_for_stack_is_docker_with_the_stack_settings():
    assert DOCKER == Docker(app="web", user="shipshape", layout=LAYOUT, start_command=STACK.app.start,
                            socket="/run/d.sock", shared_dirs=("logs",), stop_timeout=31)


def test_prepare_checks_the_image_id_pins_it_and_makes_shared_dirs():
    texts = [render(c) for c in DOCKER.prepare(RELEASE)]
    assert texts[0].startswith("STDIN=$(cat); ( umask 077;")
    assert texts[0].endswith("mv -f /srv/s/releases/20261121-abc/.shipshape.env.tmp /srv/s/releases/20261121-abc/.shipshape.env")
    assert texts[1] == (f"[ \"$({D} image inspect --format '{{{{.Id}}}}' {RELEASE.image} 2>/dev/null)\" = "
                        f"{RELEASE.image} ] || {{ echo 'image {RELEASE.image} is not on the host engine' >&2; exit 4; }}")
    assert texts[2] == f"{D} tag {RELEASE.image} shipshape/web:20261121-abc"
    assert texts[3] == "install -d -m 750 -o shipshape -g shipshape /srv/s/shared/logs"


def test_start_replaces_the_container_with_host_network_env_file_and_restart_policy():
    merge, stop, run = (render(c) for c in DOCKER.start(Slot("b", 8002, RELEASE)))
    assert merge.startswith(MERGE) and merge.endswith(
        "/srv/s/releases/20261121-abc/.docker.env /srv/s/releases/20261121-abc/.shipshape.env "
        "/srv/s/shared/secrets.env)")
    assert stop == (f"if {D} container inspect web-b >/dev/null 2>&1; then {D} stop -t 31 web-b >/dev/null && "
                    f"{D} rm web-b >/dev/null; fi")
    assert run == (f"{D} run -d --name web-b {RUN_ARGS} -e PORT=8002 --label shipshape.slot=b --restart unless-stopped "
                   "--stop-timeout 31 --stop-signal SIGTERM --log-driver json-file --log-opt max-size=10m "
                   "--log-opt max-file=3 --entrypoint /bin/sh shipshape/web:20261121-abc "
                   "-c 'exec uvicorn app.main:app --host 127.0.0.1 --port $PORT' >/dev/null")


def test_an_empty_start_command_runs_the_images_own_cmd():
    docker = Docker(app="web", user="u", layout=LAYOUT, start_command="")
    run = render(docker.start(Slot("a", 8001, RELEASE))[-1])
    assert "--entrypoint" not in run and run.endswith("shipshape/web:20261121-abc >/dev/null")


def test_run_once_is_a_removed_container_of_the_pinned_image_with_accounts_by_name_only():
    text = render(DOCKER.run_once(RELEASE, "alembic upgrade head"))
    assert text.startswith(MERGE)
    assert text.endswith(f"&& {D} run --rm {RUN_ARGS} -e ACCOUNT_USERNAME -e ACCOUNT_ROLE -e ACCOUNT_PASSWORD "
                         "--label shipshape.once=1 --entrypoint /bin/sh shipshape/web:20261121-abc "
                         "-c 'exec alembic upgrade head'")


def test_status_lists_only_this_apps_slot_containers_without_their_env():
    text = render(DOCKER.status_command())
    assert text.startswith(f"ids=$({D} ps -aq --filter label=shipshape.app=web --filter label=shipshape.slot); "
                           f"if [ -n \"$ids\" ]; then {D} inspect --format ")
    assert ".Config.Env" not in text and "{{json .Config.Labels}}" in text
    assert DOCKER.status_guard is None


def _container(name, slot, running=True, restarts=0, health=None, app="web", release="r1"):
    return json.dumps({"name": f"/{name}", "running": running, "pid": 4242 if running else 0, "restarts": restarts,
                       "labels": {"shipshape.app": app, "shipshape.slot": slot, "shipshape.release": release},
                       "health": health})


def test_parse_status_reads_running_health_and_restarts():
    out = "\n".join([_container("web-a", "a", restarts=2), _container("web-b", "b", health="unhealthy"),
                     _container("other-a", "a", app="other")])
    assert DOCKER.parse_status(out) == {
        "a": ProcessState("web-a", True, 4242, 2, "r1"),
        "b": ProcessState("web-b", False, None, 0, "r1")}
    assert DOCKER.parse_status("") == {}


def test_forget_unpins_pruned_releases_only():
    assert DOCKER.forget([]) == []
    assert render(DOCKER.forget(["r1", "r2"])[0]) == f"{D} rmi shipshape/web:r1 shipshape/web:r2 >/dev/null 2>&1 || true"


def test_log_tail_and_where_the_log_is():
    assert render(DOCKER.log_tail("a", 30)) == f"{D} logs --tail 30 web-a 2>&1 || true"
    assert DOCKER.log_path("a") == f"{D} logs web-a"


def test_export_static_copies_out_of_a_created_container_and_always_removes_it():
    text = render(DOCKER.export_static(RELEASE, "public", "/srv/s/static/r.tmp")[0])
    assert text == (f"cid=$({D} create --label shipshape.once=1 shipshape/web:20261121-abc export) && "
                    f"{{ if {D} cp \"$cid\":/app/public/. /srv/s/static/r.tmp >/dev/null 2>&1; then ok=0; else ok=1; fi; "
                    f"{D} rm -f \"$cid\" >/dev/null; [ $ok = 0 ] || {{ echo \"shipshape:app.static.dir = public: "
                    "no such directory /app/public in the image of 20261121-abc\" >&2; exit 1; }; }")


def test_the_env_merge_keeps_the_first_value_of_each_key_like_pm2s_launcher(tmp_path):
    import subprocess

    from shipshape.runtimes.docker import MERGE_ENV

    (tmp_path / "release.env").write_text("APP_FAULT=1\n# a comment\nNAME = shop\n")
    (tmp_path / "secrets.env").write_text("APP_FAULT=0\nSECRET_KEY=s3cr3t\n")
    out = tmp_path / ".docker.env"
    subprocess.run(["python3", "-c", MERGE_ENV, str(out), str(tmp_path / "release.env"), str(tmp_path / "gone.env"),
                    str(tmp_path / "secrets.env")], check=True)
    assert out.read_text() == "APP_FAULT=1\nNAME=shop\nSECRET_KEY=s3cr3t\n"


def test_nothing_to_save_the_restart_policy_brings_the_slots_back_with_the_engine():
    assert DOCKER.save() == []
    assert "--restart unless-stopped" in render(DOCKER.start(Slot("b", 8002, RELEASE))[-1])
