"""Pure tests: PM2 command builders, the ecosystem file, the status parser and for_stack."""
from __future__ import annotations

import json

import pytest

from shipshape.config import Stack
from shipshape.layout import Layout
from shipshape.remote import chain, render
from shipshape.runtimes import ProcessState, Slot, for_stack
from shipshape.runtimes.pm2 import LAUNCHER, Pm2, app_args

STACK = Stack.model_validate({"name": "t", "source": "Pulumi.t.yaml", "app": {"name": "sample"},
                              "host": {"app_user": "shipshape"}})
PM2 = for_stack(STACK, Layout("/srv/shipshape"))
SLOT = Slot("b", 8002, "20261121-abc", "/srv/shipshape/releases/20261121-abc", "/srv/shipshape/venvs/h1", "abc")
PREFIX = ("runuser -u shipshape -- env -i -C /srv/shipshape/pm2 HOME=/srv/shipshape/pm2 PATH=/usr/local/sbin:/usr/local/bin:"
          "/usr/sbin:/usr/bin:/sbin:/bin PM2_HOME=/srv/shipshape/pm2 PM2_KILL_SIGNAL=SIGTERM pm2")


def test_for_stack_is_pm2_with_the_stack_settings():
    assert PM2 == Pm2(app="sample", user="shipshape", home="/srv/shipshape/pm2",
                      env_file="/srv/shipshape/shared/secrets.env",
                      start_command=STACK.app.start)
    assert "--timeout-graceful-shutdown" in STACK.app.start  # drains before PM2's kill timeout


@pytest.mark.parametrize("start, port, args", [
    ("uvicorn app.main:app --host 127.0.0.1 --port $PORT", 8001,
     ["-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", "8001"]),
    ("python -m uvicorn app.main:app --port ${PORT} --timeout-graceful-shutdown 20", 8002,
     ["-m", "uvicorn", "app.main:app", "--port", "8002", "--timeout-graceful-shutdown", "20"]),
    ("python3 server.py --bind=127.0.0.1:$PORT", 9000, ["server.py", "--bind=127.0.0.1:9000"]),
])
def test_app_args(start, port, args):
    assert app_args(start, port) == args


def test_ecosystem_holds_no_secret_only_its_file_path():
    app = PM2.ecosystem(SLOT)["apps"][0]
    assert app["name"] == "sample-b"
    assert app["script"] == "/srv/shipshape/venvs/h1/bin/python"
    assert app["interpreter"] == "none"
    assert app["cwd"] == "/srv/shipshape/releases/20261121-abc"
    assert app["args"] == ["-c", LAUNCHER, "/srv/shipshape/shared/secrets.env",
                           "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", "8002",
                           "--timeout-graceful-shutdown", "20"]
    assert app["env"] == {"PORT": "8002", "RELEASE_ID": "20261121-abc", "GIT_SHA": "abc"}
    assert app["kill_timeout"] == 25_000


def test_start_writes_the_ecosystem_then_replaces_the_process():
    script = render(chain(PM2.start(SLOT)))
    path = "/srv/shipshape/pm2/sample-b.ecosystem.json"
    body = script.split("<<'SHIPSHAPE_PM2_ECOSYSTEM'\n")[1].split("\nSHIPSHAPE_PM2_ECOSYSTEM")[0]
    assert json.loads(body) == PM2.ecosystem(SLOT)
    assert script.index("install -d -o shipshape -m 0700 /srv/shipshape/pm2") < script.index(f"cat > {path}")
    assert f"if {PREFIX} describe sample-b >/dev/null 2>&1; then {PREFIX} delete sample-b >/dev/null; fi" in script
    assert script.endswith(f"{PREFIX} start {path}")


@pytest.mark.parametrize("slot", ["a", Slot("a", 8001, "r", "/r", "/v", "s")])
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
