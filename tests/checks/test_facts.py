"""The host facts probe: pure parsers table-tested, and the real probe run locally against real services."""
from __future__ import annotations

import os
import socket

import invoke
import pytest

from shipshape import facts_probe
from shipshape.facts import HostFacts, facts_script, is_loopback, parse_facts
from shipshape.layout import Layout
from shipshape.remote import Runner
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
    """A stack whose host is this machine: a temp root, the test Redis and PostgreSQL."""
    root = tmp_path / "srv"
    (root / "shared").mkdir(parents=True)
    secrets = root / "shared" / "secrets.env"
    secrets.write_text(f"REDIS_PASSWORD={redis_server.password}\nDATABASE_PASSWORD=x\n")
    os.chmod(secrets, 0o640)
    document = {"config": {"shipshape:host": {"root": str(root)},
                           "shipshape:redis": {"port": redis_server.port},
                           "shipshape:database": {"port": postgres_server.port}}}
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


def test_probe_never_starts_pm2(probe_stack):
    """With no PM2 daemon, the probe says so instead of running `pm2 jlist` (which would spawn one)."""
    layout = Layout(probe_stack.host.root)
    facts = parse_facts(Runner(invoke.Context()).run(facts_script(probe_stack, layout)).stdout)
    assert facts.command("processes") == {"rc": 1, "output": f"not running (no live pid in {layout.pm2_home}/pm2.pid)"}
    assert not os.path.exists(layout.pm2_home)
