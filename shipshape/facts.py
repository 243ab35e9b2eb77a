"""What a host holds, gathered in ONE SSH round trip by one probe, for the deploy and the checks alike.

`facts_script(stack, layout)` ships shipshape/facts_probe.py to the host's python3 as a heredoc; it
prints one JSON object that `parse_facts` turns into `HostFacts`. The post-deploy checks each assert
one property of those facts; the deploy reads the same probe, with fewer sections, as
`shipshape.hoststate.HostState`. So both see the host the same way, and a new fact is added once.
"""
from __future__ import annotations

import ipaddress
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from shipshape import facts_probe, nginx
from shipshape.layout import SLOTS, Layout
from shipshape.remote import Script, render
from shipshape.runtimes import for_stack
from shipshape.secrets import MASK, Sensitive

PROBE = Path(__file__).with_name("facts_probe.py")
PYTHON = "/usr/bin/python3"  # the system python: a host needs no shipshape install to be read
ISOLATED = "-I -S"  # stdlib only: no PYTHON* variables, user or site packages can change what it runs
HEREDOC = "SHIPSHAPE_FACTS"
SECTIONS = tuple(facts_probe.SECTIONS)  # everything the probe can gather: what the checks ask for


def probe_params(stack, layout: Layout, *, runtime=None, sections=SECTIONS, artifact_id: str | None = None,
                 mask: bool = False) -> dict:
    """Everything the probe needs to know, as plain JSON-able data (never a secret value).

    `sections` selects what to gather (facts_probe.SECTIONS); `artifact_id` adds whether its artifact
    is on the host; `mask` asks for the secrets file's values back, for a Runner to mask them.
    """
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise ValueError(f"unknown probe sections {unknown}; known: {', '.join(SECTIONS)}")
    runtime = runtime or for_stack(stack, layout)
    params = {
        "sections": [*sections, *(["artifact"] if artifact_id and "artifact" not in sections else [])],
        "mask": mask, "root": layout.root, "releases": layout.releases, "slots_file": layout.slots_file,
        "lock_file": layout.lock_file, "secrets_env": layout.secrets_env, "backups": layout.backups,
        "accounts_file": layout.accounts_fingerprint,
        "artifact": layout.artifact(artifact_id) if artifact_id else None,
        # The very commands `fab setup/status` run, so every reader agrees by construction.
        "nginx_test": render(nginx.config_test_command(layout)),
        "commands": {"processes": render(runtime.status_command()),
                     "weights": render(nginx.current_weights_command(layout))},
        "db": {"port": stack.database.port, "user": stack.database.user, "name": stack.database.name},
        "redis_port": stack.redis.port,
    }
    if runtime.status_guard:
        params["requires_pid_file"] = {"processes": runtime.status_guard}
    return params


def facts_script(stack, layout: Layout, **selection) -> Script:
    """One command that prints the host's facts as JSON (read-only on the host); see `probe_params`."""
    params = shlex.quote(json.dumps(probe_params(stack, layout, **selection)))
    return Script(f"{PYTHON} {ISOLATED} - {params} <<'{HEREDOC}'\n{PROBE.read_text()}\n{HEREDOC}")


@dataclass(frozen=True)
class HostFacts:
    """The probe's JSON with the questions the checks and the deploy's state ask of it."""

    raw: dict
    # The secrets file's values (asked for with mask=True), never part of `raw`: for a Runner to mask.
    mask: tuple = field(default=(), repr=False)

    def __getitem__(self, key: str):
        if key not in self.raw:  # a section that raised on the host: say why, not just the key
            raise KeyError(f"{key!r} was not gathered (probe errors: {self.raw.get('errors') or 'none'})")
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
        """{rc, output} of one of the probe's status commands (rc 127 when it could not be gathered)."""
        found = (self.raw.get("commands") or {}).get(name)
        return found or {"rc": 127, "output": (self.raw.get("errors") or {}).get(name, "not gathered")}

    def listening(self, port: int) -> list[str]:
        """Addresses with a listening TCP socket on `port`."""
        return sorted({item["address"] for item in self.raw["listeners"] if item["port"] == port})

    def processes(self, stack, layout: Layout) -> dict:
        """{slot: ProcessState} from the stack's runtime's own status parser; {} when it cannot answer."""
        return self.process_states(for_stack(stack, layout))

    def process_states(self, runtime) -> dict:
        result = self.command("processes")
        if result["rc"] != 0:
            return {}
        try:
            return runtime.parse_status(result["output"])
        except ValueError:
            return {}


def is_loopback(address: str) -> bool:
    return ipaddress.ip_address(address).is_loopback


def parse_facts(stdout: str) -> HostFacts:
    """Parse the probe's output (its last line is the JSON object)."""
    lines = [line for line in stdout.strip().splitlines() if line.strip()]
    if not lines:
        raise ValueError("the facts probe printed nothing")
    raw = json.loads(lines[-1])
    # A value the Runner already masks reads *** here: nothing left to learn from it.
    values = [value for value in raw.pop("mask", None) or () if MASK not in value]
    return HostFacts(raw, tuple(Sensitive(value) for value in values))
