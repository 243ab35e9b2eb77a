"""Pure pieces of bench/deploy_bench.py: parsing hey, progress and docker output, the figures' arithmetic,
and the bench stacks' config (pm2 and docker).
The benchmark itself is not a test: `.venv/bin/python bench/deploy_bench.py`."""
from __future__ import annotations

import importlib.util
import sys
from datetime import date
from pathlib import Path

import pytest
import yaml

from shipshape.config import Runtime
from shipshape.stackfile import parse_stack

_spec = importlib.util.spec_from_file_location(
    "deploy_bench", Path(__file__).resolve().parents[2] / "bench" / "deploy_bench.py")
bench = sys.modules.setdefault("deploy_bench", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(bench)

HEY_CLEAN = """
Summary:
  Total:\t5.0206 secs
  Requests/sec:\t248.9793

Status code distribution:
  [200]\t1250 responses
"""
HEY_FAILING = """
Summary:
  Total:\t15.1661 secs

Response time histogram:
  0.002 [1]\t|■■■■

Status code distribution:
  [200]\t1177 responses
  [502]\t2600 responses
  [503]\t4 responses

Error distribution:
  [44]\tGet "http://127.0.0.1:8280/healthz": dial tcp 127.0.0.1:8280: connect: connection refused
  [3]\tGet "http://127.0.0.1:8280/healthz": EOF
"""


@pytest.mark.parametrize("output, expected", [
    (HEY_CLEAN, (1250, 0, 0, 5.0206)),
    (HEY_FAILING, (1177, 2604, 47, 15.1661)),  # histogram "[1]" lines are not errors
    ("", (0, 0, 0, 0.0)),
])
def test_parse_hey(output, expected):
    counts = bench.parse_hey(output)
    assert (counts.ok, counts.non_2xx, counts.conn_errors, counts.seconds) == expected
    assert counts.failed == expected[1] + expected[2]


def test_parse_steps_times_each_step_from_its_lines_and_keys_it_by_first_word():
    lines = [(10.0, "==> build ..."), (10.02, " ok build (0.0s)"),
             (10.5, "==> start r1 in slot b (readiness-gated) ..."), (10.6, "    some info"),
             (11.8, " ok start r1 in slot b (readiness-gated) (1.3s)"),
             (12.0, "==> promote: slots.json, history, retention ..."),
             (12.25, " ok promote: slots.json, history, retention (0.3s)"),
             (13.0, "==> canary ..."), (14.0, " x  canary failed after 1.0s")]
    steps = bench.parse_steps(lines)
    assert set(steps) == {"build", "start", "promote"}  # a failed step is not a timing
    assert steps["start"]["s"] == pytest.approx(1.3) and steps["start"]["printed_s"] == 1.3
    assert steps["promote"]["s"] == pytest.approx(0.25)
    assert steps["start"]["title"] == "start r1 in slot b (readiness-gated)"
    assert steps["start"]["notes"] == ["some info"] and steps["build"]["notes"] == []


def test_overhead_subtracts_build_migrate_readiness_and_bake_and_the_breakdown_adds_up():
    steps = {"build": 0.1, "preflight": 0.5, "upload": 0.2, "unpack": 0.3, "backup": 0.5, "migrate": 4.0,
             "start": 1.5, "canary": 7.5, "promote": 0.3}
    figures = bench.deploy_overhead(wall_s=16.0, steps=steps, app_ready_s=1.0, bake_s=6.0)
    assert figures["overhead_s"] == pytest.approx(16.0 - 0.1 - 4.0 - 1.0 - 6.0)
    assert sum(figures["breakdown"].values()) == pytest.approx(figures["overhead_s"])
    assert figures["breakdown"]["canary minus the gate's time (nginx reloads, readiness, round trips)"] == pytest.approx(1.5)
    assert figures["breakdown"]["outside_steps (python start-up, ssh connect, lock, unlock, exit)"] == pytest.approx(1.1)


def _samples(*answers):
    return [bench.Sample(sent=i * 0.1, status=status, release=release) for i, (status, release) in enumerate(answers)]


OLD, NEW = (200, "old"), (200, "new")


@pytest.mark.parametrize("answers, t0, expected", [
    ((OLD, OLD, NEW, NEW), 0.05, 0.15),           # first answer from the new release at 0.2
    ((OLD, NEW, OLD, NEW, NEW), 0.0, 0.3),        # a late old answer: not 100% until after it
    ((OLD, NEW, (502, None), NEW), 0.0, 0.3),     # an error is not 100% either
    ((OLD, OLD), 0.0, None),                      # never switched
    ((NEW, NEW), 0.05, 0.0),                      # already switched: clipped at 0
])
def test_time_to_full(answers, t0, expected):
    assert bench.time_to_full(_samples(*answers), "new", t0) == (pytest.approx(expected) if expected is not None else None)


@pytest.mark.parametrize("answers, expected", [
    ((OLD, OLD, OLD), 0.0),
    ((OLD, (502, None), (0, None), OLD, OLD), 0.2),  # from the first failure (0.1) to the next success (0.3)
    ((OLD, (502, None), (502, None)), 0.1),          # never recovered: up to the last sample
])
def test_outage(answers, expected):
    assert bench.outage(_samples(*answers)) == pytest.approx(expected)


def test_counts_and_canary_windows_from_fab_output():
    output = ("    10%: advance after 2.3s: candidate 93 requests, error rate 0.0%, slow 0.0%; live 837 requests, "
              "error rate 0.0%, slow 0.0%\n    100%: rollback after 0.5s: candidate 480 requests, error rate 1.5%, "
              "slow 2.0%; live 900 requests, error rate 0.0%, slow 0.0%, 3 probe rounds\n"
              "    deployed 20261121114712-47575690b96d in 13 SSH round trips\nbench: 13 SSH commands\n")
    assert bench.round_trips_printed(output) == 13
    assert bench.ssh_commands_counted(output) == 13
    assert bench.canary_windows(output) == [
        {"percent": 10, "action": "advance", "seconds": 2.3, "requests": 93, "error_rate_pct": 0.0,
         "slow_pct": 0.0, "live_requests": 837},
        {"percent": 100, "action": "rollback", "seconds": 0.5, "requests": 480, "error_rate_pct": 1.5,
         "slow_pct": 2.0, "live_requests": 900}]
    assert bench.round_trips_printed("deploy failed at step canary") is None


def test_overhead_names_what_the_start_step_does_besides_readiness_per_runtime():
    steps = {"start": 2.5}
    docker = bench.deploy_overhead(wall_s=3.0, steps=steps, app_ready_s=1.0, bake_s=0, runtime="docker")
    key = next(k for k in docker["breakdown"] if k.startswith("start minus app readiness"))
    assert "docker run" in key and "pm2" not in key
    assert docker["breakdown"][key] == pytest.approx(1.5)
    assert any("pm2 cli" in k for k in bench.deploy_overhead(3.0, steps, 1.0, 0)["breakdown"])


LOCAL = yaml.safe_load((Path(__file__).resolve().parents[2] / "Pulumi.local.yaml").read_text())


@pytest.mark.parametrize("runtime, socket, expected", [
    ("pm2", None, {"runtime": Runtime.pm2, "root": "/srv/shipshape_bench", "user": "shipshape_bench",
                   "http": 8280, "slots": (8201, 8202), "db": 5435, "redis": 6382}),
    ("docker", "/run/shipshape-test/bench-host.sock",
     {"runtime": Runtime.docker, "root": "/srv/shipshape_dbench", "user": "shipshape_dbench", "http": 8680,
      "slots": (8601, 8602), "db": 5439, "redis": 6386}),
])
def test_bench_stack_config_is_valid_and_its_own(runtime, socket, expected):
    document = bench.bench_config(LOCAL, runtime, bench.STACKS[runtime], "/tmp/x/repo/examples/app", socket)
    stack = parse_stack(document, "local", "Pulumi.local.yaml")  # validated as `fab` would
    assert (stack.runtime, stack.host.root, stack.host.app_user, stack.host.http_port, stack.app.slot_ports,
            stack.database.port, stack.redis.port) == tuple(expected.values())
    assert stack.app.repo == "/tmp/x/repo/examples/app"
    if socket:
        assert stack.docker.socket == socket
    assert LOCAL["config"]["shipshape:host"]["root"] == "/srv/shipshape"  # the shared document is not changed


def test_docker_stack_config_needs_the_host_engine():
    with pytest.raises(ValueError, match="socket"):
        bench.bench_config(LOCAL, "docker", bench.STACKS["docker"], "/tmp/app")


def test_bench_stacks_share_no_root_user_or_port():
    pm2, docker = bench.STACKS["pm2"], bench.STACKS["docker"]
    assert not set(pm2.values()) & set(docker.values())


@pytest.mark.parametrize("text, expected", [
    ("2026-11-21T16:08:01.123456789Z\n", 1795277281.123456789),  # docker's RFC 3339 with nanoseconds
    ("2026-11-21T16:08:01Z", 1795277281.0),
    ("2026-11-21T17:08:01.5+01:00", 1795277281.5),
])
def test_docker_started_at(text, expected):
    assert bench.docker_started_at(text) == pytest.approx(expected, abs=1e-6)


def test_docker_started_at_refuses_what_is_not_a_timestamp():
    with pytest.raises(ValueError, match="not a docker timestamp"):
        bench.docker_started_at("Error: No such object: sample-a")


@pytest.mark.parametrize("runtime, name", [("pm2", "deploy-2026-11-21.json"),
                                           ("docker", "deploy-docker-2026-11-21.json")])
def test_results_name(runtime, name):
    assert bench.results_name(runtime, date(2026, 11, 21)) == name
