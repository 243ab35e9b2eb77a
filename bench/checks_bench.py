"""Benchmark: `pytest checks/` on the local stack vs a plain one-command-per-assertion testinfra run.

    .venv/bin/python bench/checks_bench.py [--stack local] [--rounds 3]

Prints, for each: wall time (median of rounds) and SSH commands issued. The plain run asks testinfra
the same host questions the suite asks, the usual way: one `host.run`/`host.file`/`host.socket`
call per assertion, each an SSH command (over the same ControlMaster connection, to be fair).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from checks.hosts import testinfra_host  # noqa: E402
from shipshape.layout import layout_for  # noqa: E402
from shipshape.stackfile import load_stack  # noqa: E402


def suite_once(stack_name: str) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pytest", "checks/", "--stack", stack_name, "-q", "-p",
                        "no:cacheprovider", f"--junitxml={junit}", f"--checklist={tmp}/CHECKLIST.md"],
                       cwd=REPO, capture_output=True, check=False)
        seconds = time.perf_counter() - started
        props = [p.get("value") for p in ET.parse(junit).iter("property") if p.get("name") == "ssh_commands"]
    return seconds, int(props[0])


def plain_checks(host, stack, layout) -> list[bool]:
    """The suite's host assertions, one testinfra call (one SSH command) each."""
    slots = json.loads(host.file(layout.slots_file).content_string)
    serving = [s for s, w in slots["weights"].items() if w > 0]
    pm2 = f"runuser -u {stack.host.app_user} -- env -C {layout.pm2_home} PM2_HOME={layout.pm2_home} pm2 jlist"
    results = [host.run(pm2).rc == 0]
    for slot in serving:
        port = slots["slots"][slot]["port"]
        results.append(host.socket(f"tcp://127.0.0.1:{port}").is_listening)
        results.append(not host.socket(f"tcp://0.0.0.0:{port}").is_listening)
    results.append(host.run(f"nginx -t -c {layout.nginx_conf} -p {layout.nginx}/").rc == 0)
    results.append(bool(host.file(layout.nginx_conf).content_string))
    results.append(host.run(f"pg_isready -h 127.0.0.1 -p {stack.database.port}").rc == 0)
    results.append(not host.socket(f"tcp://0.0.0.0:{stack.database.port}").is_listening)
    results.append(host.run(f"set -a; . {layout.secrets_env}; REDISCLI_AUTH=$REDIS_PASSWORD "
                            f"redis-cli -p {stack.redis.port} PING").stdout.strip() == "PONG")
    results.append(not host.socket(f"tcp://0.0.0.0:{stack.redis.port}").is_listening)
    results.append("NOAUTH" in host.run(f"redis-cli -p {stack.redis.port} PING").stdout)
    results.append(host.run(f"set -a; . {layout.secrets_env}; PGPASSWORD=$DATABASE_PASSWORD psql -h 127.0.0.1 "
                            f"-p {stack.database.port} -U {stack.database.user} -d {stack.database.name} "
                            "-XAtc 'select version_num from alembic_version'").rc == 0)
    results.append(host.run(f"ls -t {layout.backups}/*.dump | head -1").rc == 0)
    secrets = host.file(layout.secrets_env)
    results += [secrets.mode == 0o600, secrets.user == stack.host.app_user]
    results.append(host.run(f"df -P {layout.root}").rc == 0)
    results.append(host.run("cat /proc/meminfo").rc == 0)
    return results


def plain_once(stack, layout) -> tuple[float, int]:
    host = testinfra_host(stack, REPO)
    backend = host.backend
    count = {"n": 0}
    run = backend.run

    def counted(*args, **kwargs):
        count["n"] += 1
        return run(*args, **kwargs)

    backend.run = counted
    started = time.perf_counter()
    plain_checks(host, stack, layout)
    return time.perf_counter() - started, count["n"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="local")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    stack = load_stack(args.stack)
    layout = layout_for(stack)
    suite = [suite_once(args.stack) for _ in range(args.rounds)]
    plain = [plain_once(stack, layout) for _ in range(args.rounds)]
    print(f"pytest checks/ (whole suite, incl. pytest start-up and HTTP checks): "
          f"{statistics.median(s for s, _ in suite):.2f} s wall, {suite[0][1]} SSH command(s)")
    print(f"plain testinfra, host assertions only, one command each:            "
          f"{statistics.median(s for s, _ in plain):.2f} s wall, {plain[0][1]} SSH commands")


if __name__ == "__main__":
    main()
