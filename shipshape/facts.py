"""Host facts for the post-deploy checks, gathered in ONE SSH round trip.

`facts_script(stack, layout)` ships shipshape/facts_probe.py to the host's python3 as a heredoc; it
prints one JSON object that `parse_facts` turns into `HostFacts`. Each check then asserts on one
property of those facts, so a 20-check suite costs one SSH command instead of one per assertion.
"""
from __future__ import annotations

import ipaddress
import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from shipshape.layout import SLOTS, Layout
from shipshape.remote import Script

PROBE = Path(__file__).with_name("facts_probe.py")
PYTHON = "/usr/bin/python3"  # the system python: a host needs no shipshape install to be checked
UPSTREAM_SERVER = re.compile(r"^\s*server\s+[\w.\[\]:]*:(\d+)\b([^;]*);", re.M)


def probe_params(stack, layout: Layout) -> dict:
    """Everything the probe needs to know about the stack, as plain JSON-able data."""
    return {
        "root": layout.root, "releases": layout.releases, "slots_file": layout.slots_file,
        "nginx_conf": layout.nginx_conf, "nginx_prefix": layout.nginx + "/",
        "secrets_env": layout.secrets_env, "backups": layout.backups, "pm2_home": layout.pm2_home,
        "runtime": stack.runtime.value,
        "pm2_command": ["runuser", "-u", stack.host.app_user, "--", "env", f"PM2_HOME={layout.pm2_home}",
                        "pm2", "jlist"],
        "db": {"port": stack.database.port, "user": stack.database.user, "name": stack.database.name},
        "redis_port": stack.redis.port,
    }


def facts_script(stack, layout: Layout) -> Script:
    """One command that prints every host fact as JSON (read-only on the host)."""
    params = shlex.quote(json.dumps(probe_params(stack, layout)))
    return Script(f"{PYTHON} - {params} <<'SHIPSHAPE_FACTS'\n{PROBE.read_text()}\nSHIPSHAPE_FACTS")


@dataclass(frozen=True)
class HostFacts:
    """The probe's JSON with the questions checks ask of it."""

    raw: dict

    def __getitem__(self, key: str):
        return self.raw[key]

    @property
    def slots(self) -> dict:
        """slots.json, or {} when it cannot be read."""
        return self.raw.get("slots") or {}

    @property
    def state_weights(self) -> dict[str, int]:
        return dict(self.slots.get("weights") or {})

    def serving_slots(self) -> dict[str, dict]:
        """Slots that slots.json says take traffic (weight > 0) and hold a release."""
        slots = self.slots.get("slots") or {}
        return {name: slots[name] for name, weight in self.state_weights.items()
                if weight > 0 and slots.get(name)}

    def nginx_weights(self, ports: dict[str, int]) -> dict[str, int] | None:
        """Weights in the live nginx.conf per slot (a `down` server counts 0); None without a config."""
        return parse_upstream_weights(self.raw.get("nginx_conf"), ports)

    def listening(self, port: int) -> list[str]:
        """Addresses with a listening TCP socket on `port`."""
        return sorted({item["address"] for item in self.raw["listeners"] if item["port"] == port})

    def pm2_processes(self) -> dict[str, dict]:
        """PM2 processes by name: status, pid, restarts, release (from the process env)."""
        result = self.raw["processes"]
        if result["rc"] != 0:
            return {}
        return {p["name"]: {"status": p.get("pm2_env", {}).get("status"), "pid": p.get("pid"),
                            "restarts": p.get("pm2_env", {}).get("restart_time"),
                            "release": _release_of(p.get("pm2_env", {}))}
                for p in _json_tail(result["output"])}

    def containers(self) -> list[dict]:
        """Docker containers (`docker ps --all` JSON lines): Names, State, Image..."""
        result = self.raw["processes"]
        if result["rc"] != 0:
            return []
        return [json.loads(line) for line in result["output"].splitlines() if line.startswith("{")]


def _release_of(env: dict) -> str | None:
    return env.get("RELEASE_ID") or (env.get("env") or {}).get("RELEASE_ID")


def _json_tail(output: str) -> list:
    # pm2 can print warnings before its JSON; the list starts at the first '['.
    start = output.find("[")
    return json.loads(output[start:]) if start >= 0 else []


def parse_upstream_weights(conf: str | None, ports: dict[str, int]) -> dict[str, int] | None:
    """{slot: weight} from `server 127.0.0.1:PORT weight=W;` lines; `down` or absent means 0."""
    if conf is None:
        return None
    by_port = {}
    for port, options in UPSTREAM_SERVER.findall(conf):
        weight = re.search(r"weight=(\d+)", options)
        by_port[int(port)] = 0 if "down" in options.split() else int(weight.group(1)) if weight else 1
    return {slot: by_port.get(port, 0) for slot, port in ports.items()}


def slot_ports(stack) -> dict[str, int]:
    return dict(zip(SLOTS, stack.app.slot_ports))


def is_loopback(address: str) -> bool:
    return ipaddress.ip_address(address).is_loopback


def parse_facts(stdout: str) -> HostFacts:
    """Parse the probe's output (its last line is the JSON object)."""
    lines = [line for line in stdout.strip().splitlines() if line.strip()]
    if not lines:
        raise ValueError("the facts probe printed nothing")
    return HostFacts(json.loads(lines[-1]))
