"""Benchmark: `fab deploy` and `fab rollback` under steady load, against a naive in-place deploy.

    .venv/bin/python bench/deploy_bench.py [--runtime pm2|docker] [--rate N] [--workers 10]

Runs for real on a stack of its own beside the local one (the approach of tests/e2e/conftest.py), so
the shared local stack and the e2e stacks are not disturbed, one per runtime (STACKS):

  pm2     root /srv/shipshape_bench, user shipshape_bench, nginx 8280, slots 8201/8202, PostgreSQL 5435,
          Redis 6382; the slots are PM2 processes. Default rate 250 req/s.
  docker  root /srv/shipshape_dbench, user shipshape_dbench, nginx 8680, slots 8601/8602, PostgreSQL 5439,
          Redis 6386; `shipshape:runtime: docker`, the slots are containers on a private "host" dockerd
          (bench-host), images built by `fab build` on a second one (bench-build, DOCKER_HOST) and shipped
          layer by layer over SSH. Both engines are started the way tests/support/dockerd.py does (an
          engine already answering on the socket is adopted and left running) and the ones the bench
          started are stopped at the end; shipshape's base image is imported into the build engine
          first (shipshape.baseimage, seconds from its cache). Default rate 200 req/s.

The app shipped is examples/app from a throwaway clone of this repository, in which the bench commits an
empty commit per run (a new git sha to deploy). The stack (nginx, PostgreSQL, Redis, PM2) is left
running, like the e2e one.

Phases, each under its own bounded `hey` load on 127.0.0.1 (counted separately): steady load with no
action (control); `fab deploy` of the new sha; `fab rollback` (CLI); three in-process rollbacks; a
naive in-place deploy (stop the serving slot -- the PM2 process, or the container with `docker stop` --
start the other release in it, readiness). Prints a table and how each figure was measured, and writes
bench/results/deploy-<date>.json (pm2) or deploy-docker-<date>.json (docker).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.error
import urllib.request
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from shipshape.remote import Script  # noqa: E402

# One bench stack per runtime, each beside the local and e2e stacks (own root, user, ports, daemons).
STACKS = {
    "pm2": {"root": "/srv/shipshape_bench", "app_user": "shipshape_bench", "http_port": 8280, "app_port": 8201,
            "db_port": 5435, "redis_port": 6382},
    "docker": {"root": "/srv/shipshape_dbench", "app_user": "shipshape_dbench", "http_port": 8680,
               "app_port": 8601, "db_port": 5439, "redis_port": 6386},
}
RATES = {"pm2": 250, "docker": 200}  # req/s: each runtime's issue states its target at this load
ENGINES = {"host": "bench-host", "build": "bench-build"}  # the docker run's dockerds (tests/support/dockerd.py)
LOAD_BOUND_S = 150      # hard bound on every hey run; each phase stops its hey (SIGINT) well before
WARMUP_S = 1.5          # load before each action, so the canary's first window has traffic
# `fab` with shipshape.remote.Runner's run/put counted over the whole process (the unlock included).
COUNTING_FAB = """
import atexit, sys
from shipshape import remote
calls = [0]
def counted(method):
    def wrapper(self, *args, **kwargs):
        calls[0] += 1
        return method(self, *args, **kwargs)
    return wrapper
remote.Runner.run, remote.Runner.put = counted(remote.Runner.run), counted(remote.Runner.put)
atexit.register(lambda: print(f"bench: {calls[0]} SSH commands", file=sys.stderr, flush=True))
from fabric.main import program
sys.argv = ["fab", *sys.argv[1:]]
program.run()
"""

# ---------------------------------------------------------------- pure: parsing and arithmetic


@dataclass(frozen=True)
class LoadCounts:
    """One hey run: 2xx answers, other status codes, connection-level errors, its length."""

    ok: int
    non_2xx: int
    conn_errors: int
    seconds: float

    @property
    def total(self) -> int:
        return self.ok + self.non_2xx + self.conn_errors

    @property
    def failed(self) -> int:
        return self.non_2xx + self.conn_errors

    @property
    def rate(self) -> float:
        return self.total / self.seconds if self.seconds else 0.0


def parse_hey(text: str) -> LoadCounts:
    """hey's summary: `[200]\t58 responses` lines, and `[N]\t<error>` lines under `Error distribution:`."""
    statuses = {int(c): int(n) for c, n in re.findall(r"^\s*\[(\d{3})\]\s+(\d+) responses", text, re.M)}
    errors = text.split("Error distribution:", 1)[1] if "Error distribution:" in text else ""
    conn = sum(int(n) for n in re.findall(r"^\s*\[(\d+)\]\t", errors, re.M))
    total = re.search(r"^\s*Total:\s+([\d.]+) secs", text, re.M)
    ok = sum(n for code, n in statuses.items() if 200 <= code < 300)
    return LoadCounts(ok, sum(statuses.values()) - ok, conn, float(total.group(1)) if total else 0.0)


STEP_START = re.compile(r"^==> (.+) \.\.\.$")
STEP_DONE = re.compile(r"^ ok (.+) \((\d+(?:\.\d+)?)s\)$")


def parse_steps(lines: list[tuple[float, str]]) -> dict[str, dict]:
    """{step: {"s": measured, "printed_s": as printed, "notes": [what it printed]}} from
    `shipshape.progress` lines timestamped as they arrived. The key is the title's first word
    (`start b1 in slot b` -> `start`)."""
    started, notes, steps = {}, {}, {}
    for at, line in lines:
        if match := STEP_START.match(line):
            started[match.group(1)], notes[match.group(1)] = at, []
        elif (match := STEP_DONE.match(line)) and match.group(1) in started:
            key = match.group(1).split()[0].rstrip(":")
            steps[key] = {"s": round(at - started[match.group(1)], 3), "printed_s": float(match.group(2)),
                          "title": match.group(1), "notes": notes.pop(match.group(1)), "end": at}
        elif notes and line.startswith("    "):
            notes[next(reversed(notes))].append(line.strip())  # the innermost open step's info line
    return steps


# What the start step does besides the app getting ready, per runtime (the overhead breakdown's words).
START_REST = {"pm2": "pm2 cli, round trip",
              "docker": "env merge, docker stop+rm of the slot's old container, docker run, round trip"}


def deploy_overhead(wall_s: float, steps: dict[str, float], app_ready_s: float, bake_s: float,
                    runtime: str = "pm2") -> dict:
    """wall - (build + migrate + app start to readiness + configured bake), and where the rest went.

    `steps` are seconds per step key; the breakdown sums to the overhead exactly."""
    core = steps.get("build", 0) + steps.get("migrate", 0) + app_ready_s + bake_s
    breakdown = {
        "outside_steps (python start-up, ssh connect, lock, unlock, exit)": wall_s - sum(steps.values()),
        **{k: steps.get(k, 0) for k in ("preflight", "upload", "unpack", "backup", "promote")},
        f"start minus app readiness ({START_REST[runtime]})": steps.get("start", 0) - app_ready_s,
        "canary minus the gate's time (nginx reloads, readiness, round trips)": steps.get("canary", 0) - bake_s,
    }
    return {"wall_s": round(wall_s, 3), "build_s": steps.get("build", 0), "migrate_s": steps.get("migrate", 0),
            "app_ready_s": round(app_ready_s, 3), "bake_s": bake_s, "overhead_s": round(wall_s - core, 3),
            "breakdown": {k: round(v, 3) for k, v in breakdown.items()}}


@dataclass(frozen=True)
class Sample:
    sent: float            # time.monotonic() when the request left
    status: int            # 0: no HTTP answer
    release: str | None


def time_to_full(samples: list[Sample], release: str, t0: float) -> float | None:
    """Seconds from t0 until every answer comes from `release`: the send time of the first answer from
    it after the last answer that was not (another release, an error). None if that never happened."""
    ordered = sorted(samples, key=lambda s: s.sent)
    other = [i for i, s in enumerate(ordered) if s.status != 200 or s.release != release]
    rest = ordered[other[-1] + 1:] if other else ordered
    return round(max(0.0, rest[0].sent - t0), 3) if rest else None


def outage(samples: list[Sample]) -> float:
    """Seconds from the first failed answer to the first good one after the last failure (0: none)."""
    ordered = sorted(samples, key=lambda s: s.sent)
    bad = [i for i, s in enumerate(ordered) if s.status < 200 or s.status >= 300]
    if not bad:
        return 0.0
    end = ordered[bad[-1] + 1].sent if bad[-1] + 1 < len(ordered) else ordered[-1].sent
    return round(end - ordered[bad[0]].sent, 3)


CANARY_WINDOW = re.compile(r"^\s+(\d+)%: (\w[\w-]*) after ([\d.]+)s: candidate (\d+) requests, error rate "
                           r"([\d.]+)%, slow ([\d.]+)%; live (\d+) requests", re.M)


def canary_windows(output: str) -> list[dict]:
    """The gate's step lines: `10%: advance after 2.3s: candidate 60 requests, error rate 0.0%, slow 0.0%;
    live 540 requests, ...` (the candidate's figures are since the canary began)."""
    return [{"percent": int(p), "action": a, "seconds": float(t), "requests": int(n), "error_rate_pct": float(e),
             "slow_pct": float(slow), "live_requests": int(live)}
            for p, a, t, n, e, slow, live in CANARY_WINDOW.findall(output)]


def round_trips_printed(output: str) -> int | None:
    match = re.search(r"deployed \S+ in (\d+) SSH round trips", output)
    return int(match.group(1)) if match else None


def ssh_commands_counted(output: str) -> int | None:
    match = re.search(r"^bench: (\d+) SSH commands$", output, re.M)
    return int(match.group(1)) if match else None


DOCKER_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


def docker_started_at(text: str) -> float:
    """Epoch seconds from `docker inspect --format {{.State.StartedAt}}` (RFC 3339 with nanoseconds)."""
    match = DOCKER_TIME.match(text.strip())
    if not match:
        raise ValueError(f"not a docker timestamp: {text.strip()!r}")
    whole = datetime.fromisoformat(match.group(1) + match.group(3).replace("Z", "+00:00"))
    return whole.timestamp() + float(f"0.{match.group(2) or 0}")


def bench_config(document: dict, runtime: str, ports: dict, app_repo: str, socket: str | None = None) -> dict:
    """Pulumi.local.yaml's document made a bench stack's: its own root, app user and ports, the app from
    `app_repo`; for docker also `shipshape:runtime: docker` on the host engine at `socket`."""
    document = copy.deepcopy(document)
    config = document["config"]
    config["shipshape:app"].update({"repo": app_repo, "port": ports["app_port"]})
    config["shipshape:host"].update({"root": ports["root"], "app_user": ports["app_user"],
                                     "http_port": ports["http_port"]})
    config["shipshape:database"]["port"] = ports["db_port"]
    config["shipshape:redis"]["port"] = ports["redis_port"]
    config["shipshape:runtime"] = runtime
    if runtime == "docker":
        if not socket:
            raise ValueError("the docker bench stack needs its host engine's socket")
        config["shipshape:docker"] = {"socket": socket}
    return document


def results_name(runtime: str, day: date) -> str:
    """bench/results/ file: pm2 keeps the name it always had."""
    return f"deploy-{day.isoformat()}.json" if runtime == "pm2" else f"deploy-{runtime}-{day.isoformat()}.json"

# ---------------------------------------------------------------- load, probe, fab


class Probe:
    """GET /version on a fresh connection every ~10 ms from a thread: who answered, and when."""

    def __init__(self, site: str):
        self.site = site
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + LOAD_BOUND_S
        while not self._stop.is_set() and time.monotonic() < deadline:
            sent = time.monotonic()
            try:
                with urllib.request.urlopen(self.site + "/version", timeout=5) as answer:
                    sample = Sample(sent, answer.status, json.loads(answer.read()).get("release"))
            except urllib.error.HTTPError as error:
                sample = Sample(sent, error.code, None)
            except OSError:
                sample = Sample(sent, 0, None)
            self.samples.append(sample)
            time.sleep(0.01)

    def since(self, t0: float) -> list[Sample]:
        return [s for s in self.samples if s.sent >= t0]

    def wait_stable(self, seconds: float = 1.0, bound: float = 15.0) -> None:
        """Until the last `seconds` of answers are all 200 (bounded): the tail of a phase."""
        deadline = time.monotonic() + bound
        while time.monotonic() < deadline:
            now = time.monotonic()
            recent = [s for s in self.samples if s.sent >= now - seconds]
            if len(recent) > 10 and all(s.status == 200 for s in recent) and self.samples[0].sent < now - seconds:
                return
            time.sleep(0.1)


@contextmanager
def under_load(phase: str, args, results: dict):
    """hey on 127.0.0.1 for the block (+ warm-up and a stable tail), bounded by -z; counts in results."""
    command = ["hey", "-z", f"{LOAD_BOUND_S}s", "-c", str(args.workers), "-q", f"{args.rate / args.workers:g}",
               f"{args.site}/healthz"]
    hey = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    probe = Probe(args.site)
    probe._thread.start()
    try:
        time.sleep(WARMUP_S)
        yield probe
        probe.wait_stable()
        time.sleep(0.5)
    finally:
        hey.send_signal(signal.SIGINT)
        out = hey.communicate(timeout=30)[0]
        probe._stop.set()
        probe._thread.join()
    results[phase] = parse_hey(out)
    print(f"  {phase}: {results[phase]}", file=sys.stderr)


def fab(env: dict, *args: str, check: bool = True) -> tuple[float, list[tuple[float, str]]]:
    """Run `fab ARGS` (with the SSH-command counter); (wall seconds, output lines timestamped on arrival)."""
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", COUNTING_FAB, *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env={**env, "PYTHONUNBUFFERED": "1", "COLUMNS": "250"})  # rich wraps at 80 in a pipe
    lines = [(time.monotonic(), line.rstrip("\n")) for line in proc.stdout]
    proc.wait()
    wall = time.monotonic() - started
    if check and proc.returncode != 0:
        raise SystemExit(f"fab {' '.join(args)} exited {proc.returncode}:\n" + "\n".join(t for _, t in lines))
    return wall, lines


def text(lines: list[tuple[float, str]]) -> str:
    return "\n".join(t for _, t in lines)

# ---------------------------------------------------------------- the bench stack


class Stack:
    """The bench's project root (stack file + clone) and an in-process Target on its host."""

    def __init__(self, root: Path, runtime: str, engines: dict | None = None):
        self.root, self.clone, self.runtime = root, root / "repo", runtime
        self.ports, self.engines = STACKS[runtime], engines or {}
        build = self.engines.get("build")
        # `fab build` (and deploy's build) makes the image with the build engine: DOCKER_HOST is fab's only.
        self.env = {**os.environ, "SHIPSHAPE_ROOT": str(root), **(build.env if build else {})}
        os.environ["SHIPSHAPE_ROOT"] = str(root)  # for the in-process Target (shipshape.stackfile.find_root)

    def create(self) -> None:
        subprocess.run([str(REPO / "scripts" / "local-host.sh")], check=True, capture_output=True)
        subprocess.run(["git", "clone", "-q", str(REPO), str(self.clone)], check=True)
        (self.root / ".local").symlink_to(REPO / ".local")  # SSH key and known_hosts of local-host.sh
        host = self.engines.get("host")
        document = bench_config(yaml.safe_load((REPO / "Pulumi.local.yaml").read_text()), self.runtime, self.ports,
                                str(self.clone / "examples" / "app"), host.socket if host else None)
        (self.root / "Pulumi.local.yaml").write_text(yaml.safe_dump(document))
        (self.root / "Pulumi.yaml").write_text((REPO / "Pulumi.yaml").read_text())
        fab(self.env, "setup")
        from deploy.release import target
        from shipshape import progress
        from rich.console import Console

        progress.console = Console(file=open(os.devnull, "w"))  # in-process steps stay quiet
        self.t = target("local")

    def commit(self, message: str) -> str:
        git = ["git", "-C", str(self.clone), "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
        subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", message], check=True)
        return subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()

    def ensure_serving(self) -> None:
        """A live, online slot to deploy beside (a fresh or rebooted host gets one unmeasured deploy)."""
        state = self.t.read_state()
        proc = state.processes.get(state.slots.live) if state.slots.live else None
        if not (proc and proc.online):
            self.commit("bench: base release")
            fab(self.env, "deploy")

    def history_duration(self) -> float | None:
        """duration_s of the newest history entry (a deploy records from after its preflight to promote)."""
        from shipshape import history

        entries = history.parse(self.t.runner.run(history.read_command(self.t.layout)).stdout)
        return entries[-1].duration_s if entries else None

    def nginx_errors(self, offset: int, pattern: str) -> tuple[int, int]:
        """(lines of the bench nginx error.log after byte `offset` holding `pattern`, its size now)."""
        log = shlex.quote(f"{self.t.layout.nginx}/error.log")
        out = self.t.runner.run(Script(f"wc -c < {log}; tail -c +{offset + 1} {log} | grep -c {shlex.quote(pattern)} "
                                       "|| true")).stdout.split()
        return int(out[1]), int(out[0])

    def spawned_at(self, slot: str) -> float:
        """Epoch seconds at which the slot's current process started (this host's clock = ours): PM2's
        pm_uptime, or the container's State.StartedAt."""
        runtime = self.t.runtime
        if self.runtime == "docker":
            started = runtime.docker("inspect", "--format", "{{.State.StartedAt}}", runtime.container(slot))
            return docker_started_at(self.t.runner.run(started).stdout)
        out = self.t.runner.run(runtime.status_command()).stdout
        procs = json.loads(next(line for line in reversed(out.splitlines()) if line.startswith("[")))
        name = runtime.process_name(slot)
        return next(p["pm2_env"]["pm_uptime"] for p in procs if p["name"] == name) / 1000


@contextmanager
def docker_engines(runtime: str):
    """{"host": Dockerd, "build": Dockerd} for a docker run ({} for pm2), the base image on the build
    engine; engines this run started are stopped on the way out (their containers stop with them)."""
    if runtime != "docker":
        yield {}
        return
    from shipshape import baseimage
    from tests.support.dockerd import Dockerd

    with ExitStack() as started:
        engines = {}
        for role, name in ENGINES.items():
            engine = engines[role] = Dockerd(name)
            engine.start()
            started.callback(engine.stop)
            print(f"  engine {role}: {engine.socket} ({'started' if engine.started else 'adopted'})", file=sys.stderr)
        print(f"  base image on the build engine: {baseimage.ensure(engines['build'].env)}", file=sys.stderr)
        yield engines

# ---------------------------------------------------------------- phases


def bench_steady(stack: Stack, args, results: dict, figures: dict) -> None:
    with under_load("steady", args, results):
        time.sleep(3)


def bench_deploy(stack: Stack, args, results: dict, figures: dict) -> None:
    stack.commit(f"bench: {time.strftime('%Y-%m-%d %H:%M:%S')}")
    canary = stack.t.stack.canary
    with under_load("deploy", args, results):
        clock = time.time() - time.monotonic()
        wall, lines = fab(stack.env, "deploy")
    steps = parse_steps(lines)
    start = steps["start"]
    slot = re.search(r"in slot (\w+)", start["title"]).group(1)
    app_ready = start.pop("end") + clock - stack.spawned_at(slot)
    for step in steps.values():
        step.pop("end", None)
    figures["deploy"] = {
        # The bake is the gate's own time per step (at least canary.interval; shipshape/gate.py).
        **deploy_overhead(wall, {k: v["s"] for k, v in steps.items()}, app_ready,
                          sum(w["seconds"] for w in canary_windows(text(lines))) or len(canary.steps) * canary.interval,
                          stack.runtime),
        "canary": {"steps": list(canary.steps), "interval_s": canary.interval},
        "ssh_commands": ssh_commands_counted(text(lines)), "ssh_round_trips_printed": round_trips_printed(text(lines)),
        "history_duration_s": stack.history_duration(), "canary_windows": canary_windows(text(lines)), "steps": steps}


def bench_rollback_cli(stack: Stack, args, results: dict, figures: dict) -> None:
    state = stack.t.read_state()
    target = state.slots.release(state.slots.idle)
    with under_load("rollback_cli", args, results) as probe:
        t0 = time.monotonic()
        wall, lines = fab(stack.env, "rollback")
    printed = re.search(r"\((\d+\.\d+)s since start\)", text(lines))
    figures["rollback_cli"] = {"release": target, "wall_s": round(wall, 3),
                               "to_full_traffic_s": time_to_full(probe.samples, target, t0),
                               "switch_printed_s": float(printed.group(1)) if printed else None,
                               "ssh_commands": ssh_commands_counted(text(lines))}


def bench_rollback_in_process(stack: Stack, args, results: dict, figures: dict, rounds: int = 3) -> None:
    from shipshape import lock, rollback as flows

    t, runs = stack.t, []
    with under_load("rollback_in_process", args, results) as probe:
        for _ in range(rounds):
            t0, count = time.monotonic(), t.runner.count
            with lock.held(t.runner, t.layout, "rollback", stack="local"):
                locked = time.monotonic()
                state = t.read_state()
                switch = time.monotonic()
                release = flows.rollback(t, state)
                done = time.monotonic()
            runs.append({"t0": t0, "switch": switch, "release": release, "call_s": round(done - t0, 3),
                         "lock_s": round(locked - t0, 3), "state_s": round(switch - locked, 3),
                         "switch_s": round(done - switch, 3), "ssh_commands": t.runner.count - count})
            time.sleep(1.5)
    for run, nxt in zip(runs, [*runs[1:], None]):
        window = [s for s in probe.samples if nxt is None or s.sent < nxt["t0"]]
        run["to_full_traffic_s"] = time_to_full(window, run["release"], run.pop("t0"))
        run["switch_to_full_traffic_s"] = time_to_full(window, run["release"], run.pop("switch"))
    figures["rollback_in_process"] = runs


def bench_naive(stack: Stack, args, results: dict, figures: dict) -> None:
    from shipshape import lock
    from shipshape.hoststate import write_slots_command

    t = stack.t
    _, log_size = stack.nginx_errors(0, "no live upstreams")  # only lines written from now on count
    with under_load("naive", args, results) as probe:
        with lock.held(t.runner, t.layout, "naive-bench", stack="local"):
            state = t.read_state()
            live, release = state.slots.live, state.slots.release(state.slots.idle)
            slot = t.slot(live, t.release(state, release))
            t0 = time.monotonic()
            t.stop(live)                                   # stop the serving process (runtime.stop)
            t1 = time.monotonic()
            t.start(slot)                                  # its release replaced, started, readiness
            t2, ready = time.monotonic(), time.time()
            state.slots.slots[live] = t.slot_entry(slot)   # keep slots.json true for the next run
            t.runner.run(write_slots_command(t.layout, state.slots))
    figures["naive"] = {"release": release, "slot": live, "stop_s": round(t1 - t0, 3), "start_s": round(t2 - t1, 3),
                        "app_ready_s": round(ready - stack.spawned_at(live), 3),
                        "process_down_s": round(t2 - t0, 3), "outage_s": outage(probe.since(t0)),
                        "nginx_no_live_upstreams": stack.nginx_errors(log_size, "no live upstreams")[0],
                        "nginx_connection_refused": stack.nginx_errors(log_size, "Connection refused")[0]}

# ---------------------------------------------------------------- report

PHASES = {"steady": "steady load, no action (control)", "deploy": "fab deploy (canary, warm old slot)",
          "rollback_cli": "fab rollback (CLI)", "rollback_in_process": "rollback in-process, x3",
          "naive": "naive in-place: stop, replace, start"}


def table(results: dict) -> str:
    rows = [f"{'phase':<40} {'requests':>8} {'failed':>6} {'non-2xx':>7} {'conn err':>8} {'req/s':>6}"]
    for key, title in PHASES.items():
        c = results[key]
        rows.append(f"{title:<40} {c.total:>8} {c.failed:>6} {c.non_2xx:>7} {c.conn_errors:>8} {c.rate:>6.0f}")
    return "\n".join(rows)


def figures_text(f: dict) -> str:
    d, cli, runs, naive = f["deploy"], f["rollback_cli"], f["rollback_in_process"], f["naive"]
    med = {k: statistics.median(r[k] for r in runs) for k in ("call_s", "lock_s", "state_s", "switch_s")}
    full = [r["to_full_traffic_s"] for r in runs if r["to_full_traffic_s"] is not None]
    switch_full = [r["switch_to_full_traffic_s"] for r in runs if r["switch_to_full_traffic_s"] is not None]
    return "\n".join([
        f"deploy overhead: {d['overhead_s']:.2f} s (target <= 3 s) = wall {d['wall_s']:.2f} - build {d['build_s']:.2f}"
        f" - migrate {d['migrate_s']:.2f} - app start to readiness {d['app_ready_s']:.2f} - bake {d['bake_s']:g}",
        "  where the overhead went: " + ", ".join(f"{k.split(' (')[0]} {v:.2f}" for k, v in d["breakdown"].items()),
        f"  upload step printed: {' / '.join(d['steps'].get('upload', {}).get('notes', [])) or '-'}",
        f"SSH commands per deploy: {d['ssh_commands']} (Runner.run/put calls counted in the fab process, unlock"
        f" included; the deploy itself prints {d['ssh_round_trips_printed']})",
        f"rollback in-process, warm connection (median of {len(runs)}): {med['call_s']:.2f} s = lock {med['lock_s']:.2f}"
        f" + state {med['state_s']:.2f} + switch {med['switch_s']:.2f}; to 100% traffic: max {_max(full)} s from"
        f" the lock, max {_max(switch_full)} s from the switch (target <= 1 s warm)",
        f"fab rollback CLI: wall {cli['wall_s']:.2f} s (Python start-up + SSH connect + lock + state + switch +"
        f" unlock); to 100% traffic {cli['to_full_traffic_s']} s; switch as printed {cli['switch_printed_s']} s",
        f"naive in-place: stop {naive['stop_s']:.2f} s + start to readiness {naive['start_s']:.2f} s = slot down"
        f" {naive['process_down_s']:.2f} s; failures seen by the probe for {naive['outage_s']:.2f} s"
        f" (nginx error.log: 'no live upstreams' {naive['nginx_no_live_upstreams']}, 'Connection refused'"
        f" {naive['nginx_connection_refused']})",
    ])


def _max(values: list[float]) -> str:
    return f"{max(values):.2f}" if values else "n/a"


HOW = """How measured: one run on this machine against a stack of its own beside the local one (sshd on
127.0.0.1:2222; {stack}). Each phase runs under its own `hey -z {bound}s -c {workers} -q {per_worker:g}
{site}/healthz` (at most {rate} req/s; /healthz is proxied by nginx to the app; hey is stopped with SIGINT
after the phase once the probe has seen 1 s of 200s); failed = non-2xx answers + connection errors from
hey's summary. A probe thread GETs /version on a fresh connection every ~10 ms and records which release
answered: "to 100% traffic" is the send time of the first answer from the target release after the last
answer that was not (another release or an error), minus the moment the rollback was invoked. `fab
deploy` and `fab rollback` run as `python -c <fab with shipshape.remote.Runner.run/put counted>` (same
Program as `fab`); wall time is from spawning it to its exit. Step times come from the progress lines
(`==> STEP ...` / ` ok STEP (N.Ns)`) timestamped as they arrive. Deploy overhead = wall - build step{build}
- migrate step (alembic + check accounts{migrate}) - app start to readiness - configured bake (canary
steps x interval); app start to readiness = end of the start step - {spawn} (the host's clock is ours).
The rest of the start step ({start_rest}) counts as overhead, as do {also}; the migrate step (subtracted
whole) also creates the check accounts. In-process rollbacks use one Target (connection already open):
lock, read state, `shipshape.rollback.rollback`. The naive deploy, under the same lock and through the
same runtime's commands, {naive}, starts the other kept release in that same slot (readiness-gated), and
rewrites slots.json to match; its "no live upstreams" and "Connection refused" counts are lines of the
bench nginx error.log written during the phase."""

# The runtime-specific words of HOW ({engine_host}, {engine_build}, {stop_timeout}: filled in at run time).
HOW_WORDS = {
    "pm2": {"stack": "nginx, PostgreSQL, Redis, PM2 on loopback; each slot a PM2 process", "build": "",
            "migrate": "", "spawn": "the PM2 spawn time of the new process (pm_uptime)",
            "start_rest": "PM2 CLI, the round trip", "also": "the upload and the backup",
            "naive": "stops the serving slot's PM2 process"},
    "docker": {"stack": "nginx, PostgreSQL, Redis on loopback; each slot a container (`docker run --network host`"
                        " as the app user) on a private dockerd at {engine_host}, images built by `fab build`"
                        " with a second one (DOCKER_HOST={engine_build}) and shipped over SSH, only the layers"
                        " the host engine lacks",
               "build": " (artifact + `docker build` on the build engine; the bench's commit is empty, so every"
                        " build step is cached and the upload sends no layer, only the image's config)",
               "migrate": ", each a `docker run --rm` of the new image",
               "spawn": "the new container's State.StartedAt (`docker inspect`)",
               "start_rest": "merge of the env file, `docker stop` + `rm` of the slot's previous container,"
                             " `docker run -d`, the round trip",
               "also": "the upload (artifact + missing image layers, zstd, SFTP, `docker load`, id check) and"
                       " the backup",
               "naive": "stops the serving container (`docker stop -t {stop_timeout}`: SIGTERM, drain, SIGKILL"
                        " after the timeout; then `docker rm`)"},
}


def how_text(runtime: str, args, **run: str) -> str:
    """HOW for `runtime`, its words filled with this run's engines and settings (`run`)."""
    words = {key: value.format(**run) for key, value in HOW_WORDS[runtime].items()}
    how = HOW.format(bound=LOAD_BOUND_S, workers=args.workers, per_worker=args.rate / args.workers,
                     site=args.site, rate=args.rate, **words)
    return textwrap.fill(" ".join(how.split()), 105)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime", choices=sorted(STACKS), default="pm2", help="the bench stack's slot runtime")
    parser.add_argument("--rate", type=int, help="total requests/s offered by hey (default: pm2 250, docker 200)")
    parser.add_argument("--workers", type=int, default=10, help="hey -c")
    args = parser.parse_args()
    args.rate = args.rate or RATES[args.runtime]
    ports = STACKS[args.runtime]
    args.site = f"http://127.0.0.1:{ports['http_port']}"
    began, results, figures, run = time.monotonic(), {}, {}, {}
    with docker_engines(args.runtime) as engines, tempfile.TemporaryDirectory(prefix="shipshape-bench-") as tmp:
        stack = Stack(Path(tmp), args.runtime, engines)
        stack.create()
        stack.ensure_serving()
        for phase in (bench_steady, bench_deploy, bench_rollback_cli, bench_rollback_in_process, bench_naive):
            phase(stack, args, results, figures)
        if engines:
            run = {"engine_host": engines["host"].host, "engine_build": engines["build"].host,
                   "stop_timeout": str(stack.t.stack.docker.stop_timeout),
                   "engine_version": engines["host"].cli("version", "--format", "{{.Server.Version}}").stdout.strip()}
    how = how_text(args.runtime, args, **run)
    print(f"runtime: {args.runtime}", table(results), figures_text(figures), how, sep="\n\n")
    today = date.today()
    out = REPO / "bench" / "results" / results_name(args.runtime, today)
    out.parent.mkdir(exist_ok=True)
    sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    document = {"date": today.isoformat(), "repo_sha": sha, "cpus": os.cpu_count(),
                "run_s": round(time.monotonic() - began, 1), "runtime": args.runtime, "stack": ports,
                **({"docker": run} if run else {}),
                "load": {"tool": "hey", "rate": args.rate, "workers": args.workers, "url": f"{args.site}/healthz"},
                "phases": {k: {**asdict(v), "total": v.total, "failed": v.failed, "rate": round(v.rate, 1)}
                           for k, v in results.items()},
                **figures, "how_measured": " ".join(how.split())}
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwritten: {out.relative_to(REPO)} (whole run {document['run_s']} s)")


if __name__ == "__main__":
    main()
