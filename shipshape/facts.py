"""Host facts for the post-deploy checks, gathered in ONE SSH round trip.

`facts_script(stack, layout)` ships shipshape/facts_probe.py to the host's python3 as a heredoc; it
prints one JSON object that `parse_facts` turns into `HostFacts`. Each check then asserts on one
property of those facts, so a 20-check suite costs one SSH command instead of one per assertion.
"""
from __future__ import annotations

import ipaddress
import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from shipshape import nginx
from shipshape.layout import SLOTS, Layout
from shipshape.remote import Script, render
from shipshape.runtimes import for_stack

PROBE = Path(__file__).with_name("facts_probe.py")
PYTHON = "/usr/bin/python3"  # the system python: a host needs no shipshape install to be checked


def probe_params(stack, layout: Layout) -> dict:
    """Everything the probe needs to know about the stack, as plain JSON-able data."""
    runtime = for_stack(stack, layout)
    params = {
        "root": layout.root, "releases": layout.releases, "slots_file": layout.slots_file,
        "nginx_conf": layout.nginx_conf, "nginx_prefix": layout.nginx + "/",
        "secrets_env": layout.secrets_env, "backups": layout.backups,
        # The same status commands `fab status` runs, so checks and status agree by construction.
        "commands": {"processes": render(runtime.status_command()),
                     "weights": render(nginx.current_weights_command(layout))},
        "db": {"port": stack.database.port, "user": stack.database.user, "name": stack.database.name},
        "redis_port": stack.redis.port,
    }
    if runtime.status_guard:
        params["requires_pid_file"] = {"processes": runtime.status_guard}
    return params


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

    def nginx_weights(self, stack) -> dict[str, int]:
        """Weights nginx serves now, as `fab status` reads them; {} when nginx is not running."""
        served = nginx.parse_current_weights(self.command("weights")["output"], stack)
        return {slot: served.get(slot, 0) for slot in SLOTS} if served else {}

    def command(self, name: str) -> dict:
        """{rc, output} of one of the probe's status commands."""
        return self.raw["commands"][name]

    def listening(self, port: int) -> list[str]:
        """Addresses with a listening TCP socket on `port`."""
        return sorted({item["address"] for item in self.raw["listeners"] if item["port"] == port})

    def processes(self, stack, layout: Layout) -> dict:
        """{slot: ProcessState} from the runtime's own status parser; {} when it cannot answer."""
        result = self.command("processes")
        if result["rc"] != 0:
            return {}
        return for_stack(stack, layout).parse_status(result["output"])


def is_loopback(address: str) -> bool:
    return ipaddress.ip_address(address).is_loopback


def parse_facts(stdout: str) -> HostFacts:
    """Parse the probe's output (its last line is the JSON object)."""
    lines = [line for line in stdout.strip().splitlines() if line.strip()]
    if not lines:
        raise ValueError("the facts probe printed nothing")
    return HostFacts(json.loads(lines[-1]))
