"""The host probe: pure parsers table-tested, and the real probe run locally against real services.

The same probe output feeds the checks (HostFacts) and the deploy (HostState): see also
tests/release/test_hoststate.py for both parsers on one sample.
"""
from __future__ import annotations

import json
import os
import re
import socket
import time

import invoke
import pytest

from shipshape import accounts, facts_probe
from shipshape.facts import HostFacts, facts_script, is_loopback, parse_facts, probe_params
from shipshape.hoststate import parse_state, state_command
from shipshape.layout import Layout
from shipshape.remote import Runner, render
from shipshape.runtimes import for_stack
from shipshape.stackfile import parse_stack


@pytest.mark.parametrize("hexaddr, width, expected", [
    ("0100007F", 4, "127.0.0.1"),
    ("00000000", 4, "0.0.0.0"),
    ("0101A8C0", 4, "192.168.1.1"),
    ("00000000000000000000000001000000", 16, "::1"),
    ("00000000000000000000000000000000", 16, "::"),
])
def test_decode_proc_net_address(hexaddr, width, expected):
    assert facts_probe.decode_address(hexaddr, width) == expected


@pytest.mark.parametrize("address, loopback", [
    ("127.0.0.1", True), ("127.0.0.53", True), ("::1", True), ("0.0.0.0", False), ("::", False),
    ("10.0.0.4", False),
])
def test_is_loopback(address, loopback):
    assert is_loopback(address) is loopback


MIGRATION = 'revision = "{rev}"\ndown_revision = {down}\n'


@pytest.mark.parametrize("files, heads", [
    ({"1": "None", "2": '"1"'}, ["2"]),
    ({"1": "None", "2": '"1"', "3": '"1"'}, ["2", "3"]),              # a branch: two heads
    ({"1": "None", "2": '"1"', "3": '"1"', "4": '("2", "3")'}, ["4"]),  # merged again
    ({}, []),
])
def test_migration_heads(tmp_path, files, heads):
    versions = tmp_path / "migrations" / "versions"
    versions.mkdir(parents=True)
    for rev, down in files.items():
        (versions / f"{rev}_x.py").write_text(MIGRATION.format(rev=rev, down=down))
    assert facts_probe.migration_heads(str(tmp_path)) == heads


@pytest.mark.parametrize("slots, serving", [
    (None, set()),
    ({"live": "a", "weights": {"a": 100, "b": 0}, "slots": {"a": {"release": "r1"}, "b": None}}, {"a"}),
    ({"live": "a", "weights": {"a": 90, "b": 10}, "slots": {"a": {"release": "r1"}, "b": {"release": "r2"}}},
     {"a", "b"}),
    ({"live": "a", "weights": {"a": 100, "b": 0}, "slots": {"a": None, "b": {"release": "r2"}}}, set()),
])
def test_serving_slots(slots, serving):
    assert set(HostFacts({"slots": slots}).serving_slots()) == serving


def test_parse_facts_takes_the_last_line():
    assert parse_facts('warning: something\n{"now": 1}\n').raw == {"now": 1}
    with pytest.raises(ValueError):
        parse_facts("\n")


@pytest.fixture
def probe_stack(tmp_path, redis_server, postgres_server):
    """A stack whose host is this machine: a temp root, the test Redis, and a database of the test
    PostgreSQL at revision 0002_project_status."""
    root = tmp_path / "srv"
    (root / "shared").mkdir(parents=True)
    name, password = f"probe-{os.urandom(4).hex()}", os.urandom(12).hex()
    postgres_server.create_database(name, password)
    postgres_server.psql("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY); "
                         "INSERT INTO alembic_version VALUES ('0002_project_status'); "
                         f'ALTER TABLE alembic_version OWNER TO "{name}"', dbname=name)
    secrets = root / "shared" / "secrets.env"
    secrets.write_text(f"REDIS_PASSWORD={redis_server.password}\nDATABASE_PASSWORD={password}\n")
    os.chmod(secrets, 0o640)
    document = {"config": {"shipshape:host": {"root": str(root)},
                           "shipshape:redis": {"port": redis_server.port},
                           "shipshape:database": {"port": postgres_server.port, "name": name, "user": name}}}
    return parse_stack(document, "probe", "Pulumi.probe.yaml")


def test_probe_reports_real_services(probe_stack, redis_server, postgres_server):
    layout = Layout(probe_stack.host.root)
    with socket.create_server(("0.0.0.0", 0)) as public:
        port = public.getsockname()[1]
        runner = Runner(invoke.Context())
        facts = parse_facts(runner.run(facts_script(probe_stack, layout)).stdout)
    assert runner.count == 1
    assert "0.0.0.0" in facts.listening(port)
    assert facts.listening(redis_server.port) == ["127.0.0.1"]
    assert facts["redis"]["authenticated"]["output"].endswith("PONG")
    assert "NOAUTH" in facts["redis"]["anonymous"]["output"]
    assert facts["database"]["ready"]["rc"] == 0
    assert facts["secrets_file"]["mode"] == "640"
    assert facts["latest_backup"] is None and facts.slots == {} and facts["slots_error"]


@pytest.mark.parametrize("reader", ["checks", "deploy"])
def test_probe_never_starts_pm2(probe_stack, reader):
    """With no PM2 daemon, the probe says so instead of running `pm2 jlist` (which would spawn one)."""
    layout = Layout(probe_stack.host.root)
    command = (facts_script(probe_stack, layout) if reader == "checks"
               else state_command(probe_stack, layout, for_stack(probe_stack, layout)))
    facts = parse_facts(Runner(invoke.Context()).run(command).stdout)
    assert facts.command("processes") == {"rc": 1, "output": f"not running (no live pid in {layout.pm2_home}/pm2.pid)"}
    assert not os.path.exists(layout.pm2_home)


def deployed(layout: Layout) -> None:
    """slots.json serving r1 from slot a, and r1 unpacked with its manifest and one migration."""
    versions = os.path.join(layout.release("r1"), "migrations", "versions")
    os.makedirs(versions)
    os.makedirs(layout.release("r2-unpacking"))
    with open(os.path.join(versions, "0002.py"), "w") as handle:
        handle.write(MIGRATION.format(rev="0002_project_status", down="None"))
    with open(os.path.join(layout.release("r1"), "RELEASE"), "w") as handle:
        json.dump({"id": "r1", "sha": "aaa", "kind": "python", "deps_hash": "h1"}, handle)
    os.makedirs(layout.state)
    with open(layout.slots_file, "w") as handle:
        json.dump({"live": "a", "weights": {"a": 100, "b": 0},
                   "slots": {"a": {"release": "r1", "git_sha": "aaa", "port": 8001, "started": 1.0}, "b": None}},
                  handle)


def test_one_real_probe_run_feeds_the_deploy_and_the_checks_alike(probe_stack):
    layout = Layout(probe_stack.host.root)
    deployed(layout)
    runner = Runner(invoke.Context())
    stdout = runner.run(facts_script(probe_stack, layout, mask=True)).stdout
    runtime = for_stack(probe_stack, layout)
    state, facts = parse_state(stdout, probe_stack, runtime), parse_facts(stdout)
    assert runner.count == 1 and facts["errors"] == {}
    assert state.schema == set(facts["database"]["revision"]["output"].split()) == {"0002_project_status"}
    assert facts["heads"] == {"r1": ["0002_project_status"]}   # the checks' migration check: at head
    assert state.slots.release("a") == facts.serving_slots()["a"]["release"] == "r1"
    assert state.releases == facts["releases"] == {"r1": {"id": "r1", "sha": "aaa", "kind": "python",
                                                          "deps_hash": "h1"}}   # r2 has no manifest yet
    assert state.processes == facts.processes(probe_stack, layout) == {}       # no PM2 here
    assert state.weights == facts.nginx_weights(probe_stack) == {}             # nor nginx
    assert abs(state.clock - time.time()) < 60 and state.disk_kb > 0 and state.lock is None


def test_the_accounts_fingerprint_is_read_with_the_database_identity_as_the_app_user_sees_it(probe_stack):
    layout = Layout(probe_stack.host.root)
    runtime = for_stack(probe_stack, layout)
    read = lambda: parse_state(Runner(invoke.Context()).run(state_command(probe_stack, layout, runtime)).stdout,  # noqa: E731
                               probe_stack, runtime)
    before = read()
    assert before.accounts_mark is None and re.fullmatch(r"\d+/\d+", before.database_id)  # cluster id / oid
    os.makedirs(layout.state)
    Runner(invoke.Context()).run(accounts.write_command(layout, "ab" * 32))
    assert oct(os.stat(layout.accounts_fingerprint).st_mode & 0o777) == "0o600"
    after = read()
    assert after.accounts_mark == "ab" * 32 and after.database_id == before.database_id


def test_the_deploy_reads_only_its_sections(probe_stack):
    layout = Layout(probe_stack.host.root)
    stdout = Runner(invoke.Context()).run(state_command(probe_stack, layout, for_stack(probe_stack, layout),
                                                        "abc")).stdout
    raw = json.loads(stdout)
    assert set(raw) == {"now", "slots", "slots_error", "releases", "disk_free_ratio", "disk_available_kb",
                        "nginx_test", "commands", "lock", "lock_held", "database", "artifact", "accounts", "errors",
                        "mask"}
    assert set(raw["database"]) == {"revision"} and raw["artifact"] is False and raw["errors"] == {}


FAKE_TOOL = """#!/bin/sh
# Stands in for {name}: records its argv, then prints the secret it was given, as a careless tool might.
printf '%s\\n' "{name} $*" >> {log}
echo "{name} connected with ${{PGPASSWORD}}${{REDISCLI_AUTH}}"
"""


@pytest.fixture
def fake_tools(tmp_path, monkeypatch):
    """psql, pg_isready, redis-cli and nginx that log their argv to the returned file."""
    bin_dir, log = tmp_path / "bin", tmp_path / "argv.log"
    bin_dir.mkdir()
    for name in ("psql", "pg_isready", "redis-cli", "nginx"):
        (bin_dir / name).write_text(FAKE_TOOL.format(name=name, log=log))
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return log


def test_secrets_reach_child_processes_through_env_never_argv_or_output(tmp_path, fake_tools):
    root = tmp_path / "srv"
    (root / "shared").mkdir(parents=True)
    secrets = {"DATABASE_PASSWORD": "db-" + os.urandom(8).hex(), "REDIS_PASSWORD": "redis-" + os.urandom(8).hex()}
    (root / "shared" / "secrets.env").write_text("".join(f"{k}={v}\n" for k, v in secrets.items()))
    stack = parse_stack({"config": {"shipshape:host": {"root": str(root)}}}, "probe", "Pulumi.probe.yaml")
    layout = Layout(str(root))
    for mask in (False, True):
        command = facts_script(stack, layout, mask=mask)
        stdout = Runner(invoke.Context()).run(command).stdout
        raw = json.loads(stdout)
        assert sorted(raw.pop("mask", [])) == (sorted(secrets.values()) if mask else [])
        printed = json.dumps(raw)
        assert "psql connected with ***" in printed and "redis-cli connected with ***" in printed  # scrubbed
        for value in secrets.values():
            assert value not in render(command) and value not in printed
    argv = fake_tools.read_text()
    assert "psql -h 127.0.0.1" in argv and "redis-cli -h 127.0.0.1" in argv and "pg_isready" in argv
    assert not any(value in argv for value in secrets.values())


def test_a_hung_command_fails_its_fact_within_the_timeout(monkeypatch):
    monkeypatch.setattr(facts_probe, "TIMEOUT", 0.3)
    result = facts_probe.run(["sleep", "30"])
    assert result["rc"] == 127 and "TimeoutExpired" in result["output"]  # killed at the timeout, not waited for


def test_a_failing_section_leaves_the_others(tmp_path, monkeypatch):
    stack = parse_stack({"config": {"shipshape:host": {"root": str(tmp_path)}}}, "probe", "Pulumi.probe.yaml")
    params = probe_params(stack, Layout(str(tmp_path)), sections=("now", "memory", "disk"))
    monkeypatch.setitem(facts_probe.SECTIONS, "memory", lambda host: 1 / 0)
    out = facts_probe.main(params)
    assert out["errors"] == {"memory": "ZeroDivisionError: division by zero"}
    assert {"now", "disk_free_ratio", "disk_available_kb"} <= set(out) and "memory_available_ratio" not in out
