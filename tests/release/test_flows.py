"""The release flows (deploy, rollback, restart) against a recording fake host: no SSH, no daemons.

`FakeHost` stands in for Fabric's connection behind the real Runner, VPS target and PM2 runtime: it
records every command, answers the state read from a canned host, and fails the first command that
holds a given marker. Table-driven: a failure at each step gives exactly the expected undo commands
and history entry (docs/deploy.md "Failure").
"""
from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from shipshape import progress
from shipshape.accounts import fingerprint
from shipshape.build import Artifact
from shipshape.facts import HEREDOC
from shipshape.layout import Layout
from shipshape.release import deploy
from shipshape.remote import Runner
from shipshape.rollback import restart, rollback
from shipshape.runtimes import for_stack
from shipshape.stackfile import parse_stack
from shipshape.targets import DeployFailed
from shipshape.targets.vps import VpsTarget

STACK = parse_stack({"config": {
    "shipshape:target": "local",
    "shipshape:app": {"name": "sample", "port": 8001, "shared_dirs": ["logs"], "env": {"MODE": "demo"},
                      "create_account": 'APP_USER_PASSWORD="$ACCOUNT_PASSWORD" app create-user',
                      "static": {"dir": "public", "url": "/assets/"}},
    "shipshape:host": {"root": "/srv/t", "http_port": 8080},
    "shipshape:canary": {"steps": [10, 50, 100], "interval": 0},
}}, "local", "Pulumi.local.yaml")
LAYOUT = Layout("/srv/t")
LIVE_A = ("running\n        server 127.0.0.1:8001 weight=100 max_fails=0;  # slot a\n"
          "        server 127.0.0.1:8002 down;  # slot b\n")
RELEASES = {"r0": {"id": "old", "sha": "old0", "kind": "python", "deps_hash": "h0"},
            "r1": {"id": "older", "sha": "old1", "requirements_hash": "h1"}}  # a manifest from before kinds


def ok(output: str) -> dict:
    return {"rc": 0, "output": output}


def state_output(slots: dict, processes: list, releases: dict = RELEASES) -> str:
    """What the host probe (shipshape/facts_probe.py) prints for the deploy's state sections."""
    return json.dumps({
        "now": 1000.0, "slots": slots, "slots_error": None, "releases": releases, "disk_available_kb": 9999999,
        "disk_free_ratio": 0.5, "nginx_test": ok(""), "lock": None, "artifact": False, "errors": {}, "mask": [],
        "commands": {"weights": ok(LIVE_A), "processes": ok(json.dumps(processes))},
        "database": {"revision": ok("0002_project_status")}})


def proc(slot: str, release: str, status: str = "online") -> dict:
    return {"name": f"sample-{slot}", "pid": 7, "pm2_env": {"status": status, "restart_time": 0,
                                                           "env": {"RELEASE_ID": release}}}


SERVING_A = {"live": "a", "weights": {"a": 100, "b": 0},
             "slots": {"a": {"release": "r0", "git_sha": "old0", "port": 8001, "started": 1},
                       "b": {"release": "r1", "git_sha": "old1", "port": 8002, "started": 1}}}


@dataclass
class Outcome:
    stdout: str = ""
    stderr: str = ""
    return_code: int = 0


@dataclass
class FakeHost:
    """Fabric's `run`/`put`, recorded; fails the first command containing `fail_on`."""

    state: str
    fail_on: str | None = None
    commands: list = field(default_factory=list)
    failed_at: int | None = None
    notes: list = field(default_factory=list)  # what the task noted in its lock
    verdicts: list = field(default_factory=list)  # the gate's action per canary step; then advance
    controls: list = field(default_factory=list)  # per look while paused: None (nothing yet) or a command

    def run(self, text: str, **_):
        self.commands.append(text)
        if self.fail_on and self.failed_at is None and self.fail_on in text:
            self.failed_at = len(self.commands) - 1
            return Outcome(stderr=f"boom at {self.fail_on}", return_code=1)
        if HEREDOC in text:  # the state read
            return Outcome(self.state)
        control = ""
        if "canary-control" in text and self.controls:  # a paused deploy's look: what `fab canary` sent
            sent = self.controls.pop(0)
            control = json.dumps({"command": sent, "who": "bob@desk"}) + "\n" if sent else ""
        if "SHIPSHAPE_GATE" in text:  # the canary's watcher (shipshape/gate_watch.py): advance, or as told
            action = self.verdicts.pop(0) if self.verdicts else "advance"
            return Outcome(control + json.dumps({"action": action, "reason": f"{action}: as told", "elapsed": 0.5,
                                       "probes": 2, "candidate": {"requests": 60, "errors": 0, "slow": 0},
                                       "live": {"requests": 540, "errors": 0, "slow": 0},
                                       "timeline": [[0.25 * i, 6 * i, 0, 0, 54 * i, 0, 0] for i in range(40)]}) + "\n")
        return Outcome()

    def open_stream(self, text: str):
        """The deploy lock's holder: it takes the lock, prints the state, and records what the task sends."""
        self.commands.append("lock holder")
        out = [b"state-begin\n", *(line.encode() + b"\n" for line in self.state.splitlines()), b"state-end\n",
               b"held\n"]

        def send(data: bytes):
            line = data.decode().strip()
            if line == "release":
                self.commands.append("lock: release")
                out.append(b"released\n")
            elif line.startswith("note "):
                self.notes.append(json.loads(line[5:]))
        return (lambda: out.pop(0) if out else b""), send, lambda: None, lambda: True

    def put(self, local: str, remote: str):
        if self.run(f"put {remote}").return_code:
            raise OSError(f"boom at put {remote}")  # Fabric's put raises on failure

    def after_failure(self) -> list[str]:
        return self.commands[self.failed_at + 1:] if self.failed_at is not None else []


@pytest.fixture(autouse=True)
def quiet(monkeypatch):
    monkeypatch.setattr(progress.console, "quiet", True)


@pytest.fixture
def artifact(tmp_path: Path) -> Artifact:
    path = tmp_path / "abc.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        data = b'revision = "0002_project_status"\ndown_revision = None\n'
        info = tarfile.TarInfo("migrations/versions/0002.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return Artifact("abc", "abc" * 13 + "a", "2026-11-21T00:00:00+00:00", "python", "h2", path)


def target(host: FakeHost) -> VpsTarget:
    from shipshape.secrets import Sensitive

    return VpsTarget(STACK, LAYOUT, Runner(host), for_stack(STACK, LAYOUT),
                     accounts=[("check-admin", "admin", Sensitive("pw-secret-1"))],
                     env={"MODE": "demo", "API_KEY": Sensitive("api-secret-2")})


def history_lines(host: FakeHost) -> list[dict]:
    """History entries the host appended (the failed batch stopped before its own line)."""
    lines = []
    for text in (t for i, t in enumerate(host.commands) if i != host.failed_at):
        for part in text.split("printf '%s\\n' '")[1:]:
            if "' >> /srv/t/state/history.jsonl" in part:
                lines.append(json.loads(part.split("' >>")[0]))
    return lines


# step -> (marker of its first command, what the undo sends after it, outcome recorded)
ROUTE_BACK = "server 127.0.0.1:8001 weight=100 max_fails=0;  # slot a"
STOP_B = "pm2 stop sample-b"
DEPLOY_FAILURES = [
    ("upload", "put /srv/t/artifacts/abc.tar.gz.part", [], "failed"),
    ("prepare", "tar -xzf", [], "failed"),
    ("prepare", "no such directory in releases/", [], "failed"),  # the static dir (one round trip)
    ("backup", "pg_dump", [], "failed"),
    ("migrate", "exec alembic upgrade head", [], "failed"),
    ("start", "pm2 start", ["tail -n 30 /srv/t/logs/sample-b.log", STOP_B], "failed"),
    ("start", "/srv/t/static/slot-b.new", ["tail -n 30 /srv/t/logs/sample-b.log", STOP_B], "failed"),
    ("canary", "SHIPSHAPE_GATE", [ROUTE_BACK, STOP_B], "rolled_back"),
    ("promote", "slots.json.tmp", [ROUTE_BACK, STOP_B], "rolled_back"),
]


@pytest.mark.parametrize("step, marker, undo, outcome", DEPLOY_FAILURES,
                         ids=[f"{f[0]}-static" if "static" in f[1] or "directory" in f[1] else f[0]
                              for f in DEPLOY_FAILURES])
def test_a_deploy_failing_at_each_step_undoes_exactly_what_it_did(step, marker, undo, outcome, artifact):
    host = FakeHost(state_output(SERVING_A, [proc("a", "r0"), proc("b", "r1")]), fail_on=marker)
    with pytest.raises(DeployFailed) as failed:
        deploy(target(host), artifact)
    assert failed.value.step == step and f"boom at {marker}" in failed.value.reason
    sent = host.after_failure()
    expected = [*undo, "history.jsonl", "lock: release"]  # then the lock is released
    found = [next((i for i, text in enumerate(sent) if mark in text), None) for mark in expected]
    assert None not in found and found == sorted(found), f"expected {expected} in order after the failure:\n{sent}"
    assert len(sent) == len(expected), sent  # nothing else: no stray undo
    if ROUTE_BACK not in undo:
        assert not any("nginx.conf.new" in text for text in sent)
    entry = history_lines(host)[-1]
    assert (entry["outcome"], entry["step"], entry["kind"]) == (outcome, step, "deploy")
    last = entry["report"]["phases"][-1]  # a failed deploy's report: what happened up to the failure
    assert (last["name"], last["outcome"]) == (step, "failed") and last["seconds"] is not None
    assert not any("pw-secret-1" in text or "api-secret-2" in text for text in host.commands)


def test_a_deploy_that_succeeds_runs_every_step_once_in_order(artifact):
    host = FakeHost(state_output(SERVING_A, [proc("a", "r0"), proc("b", "r1")]))
    release = deploy(target(host), artifact)
    order = ["lock holder", "put ", "tar -xzf", "pg_dump", "exec alembic upgrade head",
             "ACCOUNTS=$(cat)", "pm2 start", "weight=10 ", "weight=50 ", "weight=100 max_fails=0;  # slot b",
             "slots.json.tmp", "lock: release"]
    found = [next(i for i, text in enumerate(host.commands) if mark in text) for mark in order]
    assert found == sorted(found)
    assert not any(HEREDOC in text for text in host.commands)  # the state came with the lock: one round trip
    steps = [note for note in host.notes if "step" in note]
    assert [note["step"] for note in steps] == ["upload", "prepare", "backup", "migrate", "start", "canary", "promote"]
    assert {(note["slot"], note["release"]) for note in steps} == {("b", release)}
    assert [note["canary"]["percent"] for note in host.notes if "canary" in note] == [10, 50, 100]
    assert history_lines(host)[-1]["outcome"] == "success" and history_lines(host)[-1]["release"] == release
    promote = next(text for text in host.commands if "slots.json.tmp" in text)
    assert f'"release": "{release}"' in promote and '"live": "b"' in promote


PHASES = ["upload", "prepare", "backup", "migrate", "start", "canary", "promote"]


def test_the_recorded_entry_carries_a_report_of_phases_and_canary_steps(artifact):
    host = FakeHost(state_output(SERVING_A, [proc("a", "r0"), proc("b", "r1")]))
    deploy(target(host), artifact)
    phases, steps = (history_lines(host)[-1]["report"][key] for key in ("phases", "steps"))
    assert [p["name"] for p in phases] == PHASES
    assert [p["outcome"] for p in phases] == ["ok"] * 6 + ["running"]  # the line is written in promote
    assert all(later["start"] >= p["start"] + p["seconds"] for p, later in zip(phases, phases[1:]))
    assert [(s["percent"], s["action"], s["probes"]) for s in steps] == [(10, "advance", 2), (50, "advance", 2),
                                                                          (100, "advance", 2)]
    assert steps[0]["start"] == phases[5]["start"] and steps[1]["start"] == steps[0]["start"] + steps[0]["seconds"]
    assert all(len(s["timeline"]) == 30 and s["timeline"][-1] == [9.75, 234, 0, 0, 2106, 0, 0] for s in steps)


def test_a_canary_rollback_records_the_steps_up_to_the_rollback(artifact):
    host = FakeHost(state_output(SERVING_A, [proc("a", "r0"), proc("b", "r1")]), verdicts=["advance", "rollback"])
    with pytest.raises(DeployFailed):
        deploy(target(host), artifact)
    entry = history_lines(host)[-1]
    assert entry["outcome"] == "rolled_back"
    assert [p["name"] for p in entry["report"]["phases"]] == PHASES[:-1]
    assert entry["report"]["phases"][-1]["outcome"] == "failed"
    assert [(s["percent"], s["action"]) for s in entry["report"]["steps"]] == [(10, "advance"), (50, "rollback")]


def test_static_files_are_copied_at_prepare_linked_at_start_and_pruned_at_promote(artifact):
    host = FakeHost(state_output(SERVING_A, [proc("a", "r0"), proc("b", "r1")]))
    release = deploy(target(host), artifact)
    sent = lambda mark: next(i for i, text in enumerate(host.commands) if mark in text)  # noqa: E731
    prepare, start = host.commands[sent("tar -xzf")], host.commands[sent("pm2 start")]
    assert f"cp -R --preserve=timestamps /srv/t/releases/{release}/public/. /srv/t/static/{release}.tmp" in prepare
    assert f"mv -T /srv/t/static/{release}.tmp /srv/t/static/{release}" in prepare
    assert start.index("pm2 start") < start.index(f"ln -sfn {release} /srv/t/static/slot-b.new") \
        < start.index("mv -T /srv/t/static/slot-b.new /srv/t/static/slot-b") < start.index("/readyz")
    canary = host.commands[sent("weight=10 ")]
    assert "try_files /slot-a/$shipshape_asset /slot-b/$shipshape_asset =404;" in canary  # live slot first
    promote = host.commands[sent("slots.json.tmp")]
    assert "readlink /srv/t/static/slot-a" in promote and "readlink /srv/t/static/slot-b" in promote


def test_a_warm_rollback_points_the_slot_link_at_its_release_again():
    host = FakeHost(state_output(SERVING_A, [proc("a", "r0"), proc("b", "r1")]))
    t = target(host)
    rollback(t, t.read_state())
    switch = next(text for text in host.commands if "nginx.conf.new" in text)
    assert switch.index("/readyz") < switch.index("ln -sfn r1 /srv/t/static/slot-b.new") < switch.index("nginx.conf.new")
    assert "try_files /slot-b/$shipshape_asset /slot-a/$shipshape_asset =404;" in switch


def test_without_static_files_no_static_command_is_sent(artifact):
    host = FakeHost(state_output(SERVING_A, [proc("a", "r0"), proc("b", "r1")]))
    bare = STACK.model_copy(update={"app": STACK.app.model_copy(update={"static": None})})
    deploy(VpsTarget(bare, LAYOUT, Runner(host), for_stack(bare, LAYOUT)), artifact)
    assert not any(mark in text for text in host.commands for mark in ("cp -R", "slot-b.new", "shipshape_asset"))
    # the prune still sweeps static/ if a host has one (copies left from when the stack had static)
    assert "if [ -d /srv/t/static ]; then" in next(text for text in host.commands if "slots.json.tmp" in text)


def test_a_first_deploy_goes_straight_to_all_traffic(artifact):
    host = FakeHost(state_output({}, [], {}))
    deploy(target(host), artifact)
    assert not any("weight=10 " in text for text in host.commands)
    assert any("server 127.0.0.1:8001 weight=100" in text for text in host.commands)


def test_the_live_sha_online_is_nothing_to_do(artifact):
    slots = json.loads(json.dumps(SERVING_A))
    slots["slots"]["a"]["git_sha"] = artifact.sha
    host = FakeHost(state_output(slots, [proc("a", "r0")]))
    assert deploy(target(host), artifact) is None
    assert not any("tar -xzf" in text for text in host.commands)


def test_the_release_env_reaches_the_host_on_stdin_only(artifact, monkeypatch):
    seen = {}
    host = FakeHost(state_output(SERVING_A, [proc("a", "r0"), proc("b", "r1")]))
    run = host.run

    def recording(text, **kwargs):
        stream = kwargs.get("in_stream")
        if stream:
            seen[text.splitlines()[1][:40]] = stream.read()
        return run(text, **kwargs)

    monkeypatch.setattr(host, "run", recording)
    deploy(target(host), artifact)
    stdin = "\n".join(seen.values())
    assert "MODE=demo\nAPI_KEY=api-secret-2\n" in stdin and "check-admin admin pw-secret-1" in stdin


@pytest.mark.parametrize("processes, fail_on, started, switched", [
    ([proc("a", "r0"), proc("b", "r1")], None, False, True),                 # warm: a switch only
    ([proc("a", "r0"), proc("b", "r1", "stopped")], None, True, True),       # cold: start first
    ([proc("a", "r0")], "pm2 start", True, False),                           # cold start fails: no switch
    ([proc("a", "r0"), proc("b", "r1")], "nginx.conf.new", False, True),     # switch fails: no history
])
def test_rollback(processes, fail_on, started, switched):
    host = FakeHost(state_output(SERVING_A, processes), fail_on=fail_on)
    t = target(host)
    try:
        assert rollback(t, t.read_state()) == "r1"
    except DeployFailed as error:
        assert fail_on and error.step in ("start", "rollback")
    assert any("pm2 start" in text for text in host.commands) == started
    assert any("nginx.conf.new" in text for text in host.commands) == switched
    entries = history_lines(host)
    assert [e["kind"] for e in entries] == ([] if fail_on else ["rollback"])
    if not fail_on:
        assert '"live": "b"' in next(text for text in host.commands if "slots.json.tmp" in text)


@pytest.mark.parametrize("fail_on, stopped_old", [(None, True), ("pm2 start", False), ("nginx.conf.new", False)])
def test_restart_stops_the_old_slot_only_after_the_switch(fail_on, stopped_old):
    host = FakeHost(state_output(SERVING_A, [proc("a", "r0"), proc("b", "r1")]), fail_on=fail_on)
    t = target(host)
    try:
        restart(t, t.read_state())
    except DeployFailed:
        assert fail_on
    assert any("pm2 stop sample-a" in text for text in host.commands) == stopped_old
    assert not history_lines(host)


# -- check accounts only when missing or changed (shipshape/accounts.py) ------------------------------
HOST_SECRET, DATABASE_ID = "host-secret-key-0123456789", "7310000000000000001/16385"


def with_accounts(fingerprint: str | None) -> str:
    """The state read of SERVING_A, with the host's secrets and the accounts section."""
    state = json.loads(state_output(SERVING_A, [proc("a", "r0"), proc("b", "r1")]))
    state.update(mask=[HOST_SECRET], accounts={"fingerprint": fingerprint, "database_id": DATABASE_ID})
    return json.dumps(state)


def current_mark() -> str:
    from shipshape.secrets import Sensitive

    return fingerprint([Sensitive(HOST_SECRET)], DATABASE_ID, STACK.app.create_account,
                       [("check-admin", "admin", Sensitive("pw-secret-1"))])


@pytest.mark.parametrize("stored, created", [(None, True), ("0" * 64, True), ("current", False)],
                         ids=["missing", "changed", "unchanged"])
def test_check_accounts_are_created_only_when_missing_or_changed(stored, created, artifact, monkeypatch):
    lines = []
    monkeypatch.setattr("shipshape.release.info", lines.append)
    host = FakeHost(with_accounts(current_mark() if stored == "current" else stored))
    deploy(target(host), artifact)
    sent = [text for text in host.commands if "ACCOUNTS=$(cat)" in text]
    assert len(sent) == int(created) and ("check accounts: unchanged" in lines) is not created
    if created:  # the new fingerprint is written in the same round trip, after the accounts
        assert sent[0].index("done <<<") < sent[0].index(f"printf '%s\\n' {current_mark()} > /srv/t/state/accounts")
    assert not any(HOST_SECRET in text for text in host.commands)


# -- the process list is saved with every change of it, for a reboot ----------------------------------
SAVE = "pm2 save"


def test_promote_saves_the_process_list_in_its_round_trip(artifact):
    host = FakeHost(state_output(SERVING_A, [proc("a", "r0"), proc("b", "r1")]))
    deploy(target(host), artifact)
    assert [text for text in host.commands if SAVE in text] == [next(t for t in host.commands if "slots.json.tmp" in t)]


def test_rollback_and_restart_save_in_the_round_trip_that_changes_the_list():
    host = FakeHost(state_output(SERVING_A, [proc("a", "r0"), proc("b", "r1")]))
    t = target(host)
    rollback(t, t.read_state())
    switch = [text for text in host.commands if "nginx.conf.new" in text]
    assert len(switch) == 1 and switch[0].index("slots.json.tmp") < switch[0].index(SAVE)
    host.commands.clear()
    restart(t, t.read_state())
    retire = next(text for text in host.commands if "pm2 stop sample-a" in text)
    assert retire.index("pm2 stop sample-a") < retire.index(SAVE)  # the stopped slot stays stopped at boot
    assert all(SAVE not in text for text in host.commands if "pm2 start" in text)  # not before the switch


# -- a person in the loop: --pause-at, then `fab canary promote|resume|abort` ----------------------------
@pytest.mark.parametrize("command, pause_at, weights, outcome", [
    ("resume", 50, ["weight=10 ", "weight=50 ", "weight=100 max_fails=0;  # slot b"], "success"),
    ("promote", 10, ["weight=10 ", "weight=100 max_fails=0;  # slot b"], "success"),
    ("abort", 10, ["weight=10 "], "rolled_back"),
])
def test_a_paused_deploy_waits_for_a_person_then_does_what_they_sent(command, pause_at, weights, outcome, artifact,
                                                                     monkeypatch):
    monkeypatch.setattr("shipshape.release.PAUSE_POLL_S", 0)
    host = FakeHost(state_output(SERVING_A, [proc("a", "r0"), proc("b", "r1")]), controls=[None, None, command])
    if command == "abort":
        with pytest.raises(DeployFailed) as failed:
            deploy(target(host), artifact, pause_at=pause_at)
        assert failed.value.reason == f"aborted at {pause_at}% by bob@desk"
    else:
        deploy(target(host), artifact, pause_at=pause_at)
    routed = [mark for mark in ("weight=10 ", "weight=50 ", "weight=100 max_fails=0;  # slot b")
              if any(mark in text for text in host.commands)]
    assert routed == weights
    assert sum("canary-control" in text for text in host.commands) == 3  # it looked until the command came
    assert [n.get("paused") for n in host.notes if "paused" in n] == [pause_at, None]
    assert history_lines(host)[-1]["outcome"] == outcome


def test_a_paused_deploy_still_rolls_back_a_candidate_the_gate_finds_worse(artifact, monkeypatch):
    monkeypatch.setattr("shipshape.release.PAUSE_POLL_S", 0)
    host = FakeHost(state_output(SERVING_A, [proc("a", "r0"), proc("b", "r1")]), controls=[None, None],
                    verdicts=["advance", "undecided", "rollback"])
    with pytest.raises(DeployFailed) as failed:
        deploy(target(host), artifact, pause_at=10)
    assert failed.value.reason == "while paused at 10%: rollback: as told"
    assert history_lines(host)[-1]["outcome"] == "rolled_back"
