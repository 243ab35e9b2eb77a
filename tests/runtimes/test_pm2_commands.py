"""Pure tests: PM2 command builders, the ecosystem file, the status parser and for_stack."""
from __future__ import annotations

import shlex

import json

import pytest

from shipshape.config import Stack
from shipshape.layout import Layout
from shipshape.remote import chain, render
from shipshape.runtimes import NotSupported, ProcessState, Release, Slot, for_stack
from shipshape.runtimes.kinds import KINDS, detect
from shipshape.runtimes.pm2 import LAUNCHER, Pm2, shell

STACK = Stack.model_validate({"name": "t", "source": "Pulumi.t.yaml", "app": {"name": "sample"},
                              "host": {"app_user": "shipshape"}})
LAYOUT = Layout("/srv/shipshape")
PM2 = for_stack(STACK, LAYOUT)
RELEASE = Release("20261121-abc", "/srv/shipshape/releases/20261121-abc", "abc", "python", "h1")
SLOT = Slot("b", 8002, RELEASE)
PREFIX = ("runuser -u shipshape -- env -i -C /srv/shipshape/pm2 HOME=/srv/shipshape/pm2 PATH=/usr/local/sbin:/usr/local/bin:"
          "/usr/sbin:/usr/bin:/sbin:/bin PM2_HOME=/srv/shipshape/pm2 PM2_KILL_SIGNAL=SIGTERM pm2")
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def test_for_stack_is_pm2_with_the_stack_settings():
    assert PM2 == Pm2(app="sample", user="shipshape", layout=LAYOUT, start_command=STACK.app.start)
    assert "--timeout-graceful-shutdown" in STACK.app.start  # drains before PM2's kill timeout


@pytest.mark.parametrize("command, argv", [
    # one simple command: exec'd, so the app itself gets PM2's SIGTERM
    ("uvicorn app.main:app --port $PORT", ["/bin/sh", "-c", "exec uvicorn app.main:app --port $PORT"]),
    ("node dist/server.js", ["/bin/sh", "-c", "exec node dist/server.js"]),
    ("npx prisma migrate deploy", ["/bin/sh", "-c", "exec npx prisma migrate deploy"]),
    # anything the shell must interpret stays as written
    ("cd api && node server.js", ["/bin/sh", "-c", "cd api && node server.js"]),
    ("FOO=1 node x.js", ["/bin/sh", "-c", "FOO=1 node x.js"]),
    ("a | b", ["/bin/sh", "-c", "a | b"]),
])
def test_commands_run_as_written_under_sh(command, argv):
    assert shell(command) == argv


@pytest.mark.parametrize("command, problem", [("", "empty"), ("node 'unclosed", "No closing quotation")])
def test_bad_commands_are_refused(command, problem):
    with pytest.raises(ValueError, match=problem):
        shell(command)


@pytest.mark.parametrize("kind, deps_hash, path", [
    ("python", "h1", "/srv/shipshape/venvs/h1/bin:" + SYSTEM_PATH),
    ("node", "n1", "/srv/shipshape/releases/20261121-abc/node_modules/.bin:" + SYSTEM_PATH),
])
def test_ecosystem_holds_no_secret_only_its_files(kind, deps_hash, path):
    slot = Slot("b", 8002, Release(RELEASE.id, RELEASE.dir, "abc", kind, deps_hash))
    app = PM2.ecosystem(slot)["apps"][0]
    assert app["name"] == "sample-b"
    assert app["script"] == "/usr/bin/python3"
    assert app["interpreter"] == "none"
    assert app["cwd"] == "/srv/shipshape/releases/20261121-abc"
    assert app["args"] == ["-c", LAUNCHER, "/srv/shipshape/releases/20261121-abc/.shipshape.env",
                           "/srv/shipshape/shared/secrets.env", "--", "/bin/sh", "-c",
                           "exec uvicorn app.main:app --host 127.0.0.1 --port $PORT --timeout-graceful-shutdown 20"]
    assert app["env"] == {"PORT": "8002", "RELEASE_ID": "20261121-abc", "GIT_SHA": "abc", "PATH": path}
    assert app["out_file"] == app["error_file"] == "/srv/shipshape/logs/sample-b.log"
    assert app["kill_timeout"] == 25_000


def test_prepare_python_makes_a_venv_once_and_the_env_file_from_stdin():
    script = render(chain(PM2.prepare(RELEASE)))
    assert script.index("STDIN=$(cat)") < script.index("venv")  # stdin read before anything can fail
    assert "> /srv/shipshape/releases/20261121-abc/.shipshape.env.tmp" in script
    assert "chown shipshape" in script and "umask 077" in script
    assert "if [ ! -f /srv/shipshape/venvs/h1/.complete ]" in script
    assert "/usr/bin/python3 -m venv /srv/shipshape/venvs/h1" in script
    assert "-r /srv/shipshape/releases/20261121-abc/requirements.txt" in script


def test_prepare_node_installs_from_the_lockfile_once_and_links_shared_dirs():
    pm2 = Pm2("web", "shipshape", LAYOUT, "node dist/server.js", shared_dirs=("logs", "public/uploads"))
    release = Release("r2", "/srv/shipshape/releases/r2", "abc", "node", "n1")
    script = render(chain(pm2.prepare(release)))
    assert "if [ ! -f /srv/shipshape/npm/n1/.complete ]" in script
    assert ("cp /srv/shipshape/releases/r2/package.json /srv/shipshape/releases/r2/package-lock.json "
            "/srv/shipshape/npm/n1/") in script
    assert "npm ci --omit=dev" in script
    assert "ln -sfn /srv/shipshape/npm/n1/node_modules /srv/shipshape/releases/r2/node_modules" in script
    assert "install -d -m 750 -o shipshape -g shipshape /srv/shipshape/shared/logs" in script
    assert "ln -sfn /srv/shipshape/shared/public/uploads /srv/shipshape/releases/r2/public/uploads" in script


def test_run_once_is_the_app_user_in_the_release_with_its_path():
    command = PM2.run_once(RELEASE, "alembic upgrade head")
    assert command[:6] == ["runuser", "-u", "shipshape", "--", "env", "-C"]
    assert f"PATH=/srv/shipshape/venvs/h1/bin:{SYSTEM_PATH}" in command
    assert command[-3:] == ["/bin/sh", "-c", "exec alembic upgrade head"]


@pytest.mark.parametrize("files, configured, kind", [
    ({"requirements.txt"}, None, "python"),
    ({"package.json", "package-lock.json"}, None, "node"),
    ({"requirements.txt", "package.json", "package-lock.json"}, "node", "node"),
])
def test_kind_is_detected_or_configured(files, configured, kind):
    assert detect(files, configured, "app").name == kind


@pytest.mark.parametrize("files, configured, words", [
    (set(), None, "cannot tell the app's kind"),
    ({"package.json"}, None, "commit the lockfile"),
    ({"requirements.txt", "package-lock.json"}, None, "set shipshape:app.kind"),
    ({"requirements.txt"}, "node", "kind is node but the app has no package-lock.json"),
])
def test_kind_that_cannot_be_told_says_why(files, configured, words):
    with pytest.raises(ValueError, match=words):
        detect(files, configured, "app")


def test_deps_hash_follows_the_lockfiles_only():
    node = KINDS["node"]
    base = {"package.json": b"{}", "package-lock.json": b"{1}", "src/x.ts": b"a"}
    assert node.deps_hash(base) == node.deps_hash({**base, "src/x.ts": b"b"})
    assert node.deps_hash(base) != node.deps_hash({**base, "package-lock.json": b"{2}"})


def test_start_writes_the_ecosystem_then_replaces_the_process():
    script = render(chain(PM2.start(SLOT)))
    path = "/srv/shipshape/pm2/sample-b.ecosystem.json"
    body = script.split("<<'SHIPSHAPE_PM2_ECOSYSTEM'\n")[1].split("\nSHIPSHAPE_PM2_ECOSYSTEM")[0]
    assert json.loads(body) == PM2.ecosystem(SLOT)
    assert script.index("install -d -o shipshape -m 0700 /srv/shipshape/pm2") < script.index(f"cat > {path}")
    assert f"if {PREFIX} describe sample-b >/dev/null 2>&1; then {PREFIX} delete sample-b >/dev/null; fi" in script
    assert "mv -f /srv/shipshape/logs/sample-b.log /srv/shipshape/logs/sample-b.log.1" in script
    assert script.endswith(f"{PREFIX} start {path}")


@pytest.mark.parametrize("slot", ["a", Slot("a", 8001, RELEASE)])
def test_stop_is_graceful_and_a_no_op_when_absent(slot):
    assert [render(c) for c in PM2.stop(slot)] == [
        f"if {PREFIX} describe sample-a >/dev/null 2>&1; then {PREFIX} stop sample-a >/dev/null; fi"]


def test_status_is_jlist():
    assert render(PM2.status_command()) == (
        f"if [ -d /srv/shipshape/pm2 ]; then {PREFIX} jlist; else echo '[]'; fi")


def _proc(name, status, pid, restarts=0, release="r1"):
    return {"name": name, "pid": pid, "pm2_env": {"status": status, "restart_time": restarts,
                                                  "env": {"RELEASE_ID": release}}}


@pytest.mark.parametrize("procs, expected", [
    ([], {}),
    ([_proc("sample-a", "online", 41, 2, "r7")], {"a": ProcessState("sample-a", True, 41, 2, "r7")}),
    ([_proc("sample-a", "stopped", 0), _proc("sample-b", "online", 9)],
     {"a": ProcessState("sample-a", False, None, 0, "r1"), "b": ProcessState("sample-b", True, 9, 0, "r1")}),
    ([_proc("other-a", "online", 5), _proc("sample-x-b", "online", 6)], {}),
])
def test_parse_status(procs, expected):
    assert PM2.parse_status(json.dumps(procs)) == expected


def test_parse_status_refuses_output_without_a_list():
    with pytest.raises(ValueError, match="no process list"):
        PM2.parse_status("[PM2][ERROR] Permission denied")


def test_parse_status_skips_a_notice_before_the_json():
    stdout = "[PM2] Spawning PM2 daemon with pm2_home=/x\n" + json.dumps([_proc("sample-b", "online", 3)])
    assert PM2.parse_status(stdout)["b"].pid == 3


def test_save_is_the_app_users_pm2_save_detached_and_never_fails_the_change_it_follows():
    save = (f"{PREFIX} save >/dev/null 2>&1 || echo \"$(date -u +%FT%TZ) pm2 save failed: a reboot brings back "
            "the processes last saved\" >> /srv/shipshape/logs/pm2-save.log")
    assert [render(c) for c in PM2.save()] == [f"nohup sh -c {shlex.quote(save)} >/dev/null 2>&1 </dev/null &"]
