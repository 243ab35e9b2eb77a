"""One probe output, two readers: the deploy's HostState and the checks' HostFacts agree on a host.

Pure: a sample of what shipshape/facts_probe.py prints, read by both parsers; the deploy's command as
data. The probe run for real (locally, against real services and fake binaries) is in
tests/checks/test_facts.py.
"""
from __future__ import annotations

import json
import shlex

import pytest

from shipshape.facts import HEREDOC, PROBE, SECTIONS, HostFacts, facts_script, parse_facts, probe_params
from shipshape.hoststate import STATE_SECTIONS, parse_state, state_command
from shipshape.layout import Layout
from shipshape.remote import render
from shipshape.runtimes import ProcessState, for_stack
from shipshape.stackfile import parse_stack
from shipshape.targets import DeployFailed

STACK = parse_stack({"config": {"shipshape:app": {"name": "sample", "port": 8001},
                                "shipshape:host": {"root": "/srv/t"}}}, "t", "Pulumi.t.yaml")
LAYOUT = Layout("/srv/t")
RUNTIME = for_stack(STACK, LAYOUT)
SECRET = "s3cret-database-password"


def ran(output: str, rc: int = 0) -> dict:
    return {"rc": rc, "output": output}


def pm2_jlist(**releases) -> str:
    return json.dumps([{"name": f"sample-{slot}", "pid": 4100 + i,
                        "pm2_env": {"status": "online", "restart_time": i, "env": {"RELEASE_ID": release}}}
                       for i, (slot, release) in enumerate(releases.items())])


def sample(**changes) -> dict:
    """What the probe prints with every section (a canary at 90/10), `changes` applied."""
    probe = {
        "now": 1763726400.5,
        "slots": {"live": "a", "weights": {"a": 90, "b": 10},
                  "slots": {"a": {"release": "r1", "git_sha": "aaa", "port": 8001, "started": 1.0},
                            "b": {"release": "r2", "git_sha": "bbb", "port": 8002, "started": 2.0}}},
        "slots_error": None,
        "releases": {"r1": {"id": "r1", "sha": "aaa", "kind": "python", "deps_hash": "h1"},
                     "r2": {"id": "r2", "sha": "bbb", "kind": "python", "deps_hash": "h2"}},
        "heads": {"r1": ["0002_project_status"], "r2": ["0002_project_status"]},
        "listeners": [{"address": "127.0.0.1", "port": 8001}, {"address": "127.0.0.1", "port": 8002}],
        "nginx_test": ran(""),
        "commands": {"weights": ran("running\n  server 127.0.0.1:8001 weight=90 max_fails=0;  # slot a\n"
                                    "  server 127.0.0.1:8002 weight=10 max_fails=0;  # slot b"),
                     "processes": ran(pm2_jlist(a="r1", b="r2"))},
        "lock": json.dumps({"who": "ana@laptop", "pid": 4242, "task": "deploy", "started": 1763726300.0}),
        "database": {"ready": ran("127.0.0.1:5432 - accepting connections"), "revision": ran("0002_project_status")},
        "redis": {"anonymous": ran("NOAUTH Authentication required."), "authenticated": ran("PONG")},
        "latest_backup": None, "secrets_file": {"path": LAYOUT.secrets_env, "mode": "600", "owner": "shipshape"},
        "disk_free_ratio": 0.42, "disk_available_kb": 2048000, "memory_available_ratio": 0.6,
        "artifact": True, "errors": {},
        "accounts": {"fingerprint": "ab" * 32, "database_id": "7310000000000000001/16385"},
        "mask": [SECRET, "***"],  # the second: a value the Runner already masks
    }
    return {**probe, **changes}


def both(probe: dict):
    stdout = "a notice some shell printed first\n" + json.dumps(probe) + "\n"
    return parse_state(stdout, STACK, RUNTIME), parse_facts(stdout)


def test_one_probe_output_reads_the_same_to_the_deploy_and_to_the_checks():
    state, facts = both(sample())
    assert state.weights == facts.nginx_weights(STACK) == {"a": 90, "b": 10}
    assert state.processes == facts.processes(STACK, LAYOUT) == {
        "a": ProcessState("sample-a", True, 4100, 0, "r1"), "b": ProcessState("sample-b", True, 4101, 1, "r2")}
    assert {slot for slot, weight in state.slots.weights.items() if weight and state.slots.release(slot)} \
        == set(facts.serving_slots()) == {"a", "b"}
    assert state.slots.slots == facts.slots["slots"] and state.slots.live == facts.slots["live"] == "a"
    assert state.schema == set(facts["database"]["revision"]["output"].split()) == {"0002_project_status"}
    assert state.nginx_ok is (facts["nginx_test"]["rc"] == 0) is True
    assert state.releases == facts["releases"] and state.clock == facts["now"]
    assert state.disk_kb == 2048000 and state.has_artifact is True and state.lock.who == "ana@laptop"


def test_secret_values_come_back_only_to_be_masked():
    state, facts = both(sample())
    assert [value.reveal() for value in state.secrets] == [SECRET]  # the *** one is known already
    assert "mask" not in facts.raw
    for printed in (repr(state), str(state), repr(facts), str(state.secrets), json.dumps(facts.raw)):
        assert SECRET not in printed


@pytest.mark.parametrize("changes, field, expected", [
    ({"slots": None, "slots_error": "FileNotFoundError: [Errno 2] ...", "releases": {}}, "slots.live", None),
    ({"database": {"revision": ran('ERROR:  relation "alembic_version" does not exist', 1)}}, "schema", set()),
    ({"database": {"revision": ran("0002_a\n0002_b")}}, "schema", {"0002_a", "0002_b"}),   # two heads applied
    ({"nginx_test": ran("nginx: [emerg] unexpected end of file", 1)}, "nginx_ok", False),
    ({"commands": {"weights": ran("stopped"), "processes": ran("not running (no live pid in pm2.pid)", 1)}},
     "processes", {}),
    ({"commands": {"weights": ran("stopped"), "processes": ran("[PM2] Spawning PM2 daemon")}}, "processes", {}),
    ({"commands": {}, "errors": {"weights": "OSError: boom"}}, "weights", {}),
    ({"lock": None}, "lock", None),
    ({"artifact": False}, "has_artifact", False),
    ({"mask": []}, "secrets", []),
    ({}, "accounts_mark", "ab" * 32),
    ({}, "database_id", "7310000000000000001/16385"),
    ({"accounts": {"fingerprint": None, "database_id": None}}, "accounts_mark", None),
    ({"accounts": None, "errors": {"accounts": "OSError: boom"}}, "database_id", None),
], ids=["nothing-deployed", "no-alembic-table", "two-heads", "nginx-invalid", "pm2-down", "pm2-noise",
        "section-failed", "unlocked", "no-artifact", "no-secrets", "accounts-mark", "database-id",
        "no-accounts-mark", "accounts-failed"])
def test_host_state_reads(changes, field, expected):
    state = parse_state(json.dumps(sample(**changes)), STACK, RUNTIME)
    value = state
    for part in field.split("."):
        value = getattr(value, part)
    assert value == expected


def test_an_unreadable_slots_json_stops_the_task_instead_of_looking_like_a_fresh_host():
    with pytest.raises(DeployFailed, match="state/slots.json cannot be read: JSONDecodeError"):
        parse_state(json.dumps(sample(slots=None, slots_error="JSONDecodeError: Expecting value")), STACK, RUNTIME)


def test_no_probe_output_is_a_failed_state_read_that_prints_nothing_it_read():
    with pytest.raises(DeployFailed, match="the host probe printed no facts") as failed:
        parse_state(f'{{"mask": ["{SECRET}"], "cut short', STACK, RUNTIME)
    assert SECRET not in str(failed.value)


def params_of(command) -> dict:
    text = render(command)
    assert text.count(HEREDOC) == 2 and PROBE.read_text() in text  # the same probe, shipped whole
    return json.loads(shlex.split(text.split("\n", 1)[0])[-2])


def test_the_deploy_asks_the_same_probe_for_fewer_sections():
    deploy = params_of(state_command(STACK, LAYOUT, RUNTIME, "abc"))
    checks = params_of(facts_script(STACK, LAYOUT))
    assert deploy["sections"] == [*STATE_SECTIONS, "artifact"] and deploy["artifact"] == LAYOUT.artifact("abc")
    assert deploy["mask"] is True and checks["mask"] is False
    assert checks["sections"] == list(SECTIONS) and set(STATE_SECTIONS) < set(SECTIONS)
    assert not {"listeners", "redis", "memory", "database", "heads"} & set(deploy["sections"])
    assert {k: v for k, v in deploy.items() if k not in ("sections", "mask", "artifact")} \
        == {k: v for k, v in checks.items() if k not in ("sections", "mask", "artifact")}
    assert deploy["requires_pid_file"] == {"processes": RUNTIME.status_guard}


def test_unknown_sections_are_refused():
    with pytest.raises(ValueError, match=r"unknown probe sections \['ports'\]"):
        probe_params(STACK, LAYOUT, sections=("now", "ports"))


def test_facts_say_why_a_fact_was_not_gathered():
    facts = HostFacts({"commands": {}, "errors": {"processes": "TimeoutExpired: ...", "redis": "OSError: boom"}})
    assert facts.command("processes") == {"rc": 127, "output": "TimeoutExpired: ..."}
    assert facts.command("weights") == {"rc": 127, "output": "not gathered"}
    with pytest.raises(KeyError, match="'redis' was not gathered .*OSError: boom"):
        facts["redis"]
