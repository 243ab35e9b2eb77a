"""What a host holds, read in ONE round trip, and slots.json (docs/host-state.md) written atomically.

`state_command` is the host probe the post-deploy checks read (shipshape.facts), asked only for what a
task decides from: host clock, slots.json, kept releases and their manifests, free disk, `nginx -t`,
served weights, the runtime's processes, lock, schema revision, the check accounts' fingerprint with the
database's identity, the artifact's presence, and the secrets file's values for the Runner to mask.
`parse_state` reads it as `HostState`. Every task starts here: read state, then do only the difference.
"""
from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field

from shipshape import lock
from shipshape.facts import HostFacts, facts_script, parse_facts
from shipshape.layout import SLOTS, Layout
from shipshape.remote import Command, Script
from shipshape.targets.common import DeployFailed


@dataclass
class Slots:
    """slots.json: the live slot, the weights after the last completed step, the release per slot."""

    live: str | None = None
    weights: dict = field(default_factory=lambda: {s: 0 for s in SLOTS})
    slots: dict = field(default_factory=lambda: {s: None for s in SLOTS})

    @classmethod
    def from_dict(cls, data: dict) -> "Slots":
        """From slots.json's content ({} for a host with nothing deployed yet)."""
        if not data:
            return cls()
        slots = data.get("slots") or {}
        return cls(data.get("live"), data.get("weights") or {}, {s: slots.get(s) for s in SLOTS})

    def to_json(self) -> str:
        return json.dumps({"live": self.live, "weights": self.weights, "slots": self.slots}, indent=2, sort_keys=True)

    @property
    def idle(self) -> str:
        """The slot a new release goes to: the one not serving (slot a on a fresh host)."""
        return "b" if self.live == "a" else "a"

    def release(self, slot: str | None) -> str | None:
        entry = self.slots.get(slot) if slot else None
        return entry["release"] if entry else None


def write_slots_command(layout: Layout, slots: Slots) -> Command:
    """Temp file + mv: readers never see a half-written slots.json."""
    path, tmp = shlex.quote(layout.slots_file), shlex.quote(layout.slots_file + ".tmp")
    return Script(f"printf '%s\\n' {shlex.quote(slots.to_json())} > {tmp} && mv -f {tmp} {path}")


# What a task decides from. Not the checks' ports, TLS, Redis, backups or memory: preflight stays fast.
STATE_SECTIONS = ("now", "slots", "releases", "disk", "nginx_test", "weights", "processes", "lock", "schema",
                  "accounts")


def state_command(stack, layout: Layout, runtime, artifact_id: str | None = None) -> Command:
    """Everything a task needs to decide, in one round trip (read-only on the host)."""
    return facts_script(stack, layout, runtime=runtime, sections=STATE_SECTIONS, artifact_id=artifact_id, mask=True)


@dataclass
class HostState:
    clock: float
    slots: Slots
    releases: dict            # release id -> manifest (id, sha, committed, kind, deps_hash)
    disk_kb: int
    nginx_ok: bool
    nginx_error: str
    weights: dict             # what nginx serves now
    processes: dict           # slot -> runtimes.ProcessState
    lock: object              # lock.LockInfo | None
    schema: set
    has_artifact: bool
    secrets: list             # Sensitive values of the host's secrets file, for runner.add_secret
    accounts_mark: str | None = None  # state/accounts.fingerprint (shipshape.accounts), None when absent
    database_id: str | None = None    # the database's identity, part of that fingerprint

    @classmethod
    def from_facts(cls, facts: HostFacts, stack, runtime) -> "HostState":
        raw = facts.raw
        unreadable = raw.get("slots_error") or ""
        if unreadable and not unreadable.startswith("FileNotFoundError"):  # missing: nothing deployed yet
            raise DeployFailed("state", f"state/slots.json cannot be read: {unreadable}")
        nginx_test = raw.get("nginx_test") or {"rc": 127, "output": (raw.get("errors") or {}).get("nginx_test", "")}
        revision = (raw.get("database") or {}).get("revision") or {}
        accounts = raw.get("accounts") or {}
        return cls(
            clock=float(raw.get("now") or 0), slots=Slots.from_dict(facts.slots), releases=raw.get("releases") or {},
            disk_kb=int(raw.get("disk_available_kb") or 0), nginx_ok=nginx_test["rc"] == 0,
            nginx_error=nginx_test["output"], weights=facts.nginx_weights(stack),
            processes=facts.process_states(runtime), lock=lock.parse(raw.get("lock") or "", raw.get("lock_held")),
            # No alembic_version table (a first deploy) or no database: nothing applied yet.
            schema=set(revision["output"].split()) if revision.get("rc") == 0 else set(),
            has_artifact=bool(raw.get("artifact")), secrets=list(facts.mask),
            accounts_mark=accounts.get("fingerprint"), database_id=accounts.get("database_id"))


def parse_state(stdout: str, stack, runtime) -> HostState:
    try:
        facts = parse_facts(stdout)
    except ValueError as error:  # the message never holds the output: it may carry the secrets to mask
        raise DeployFailed("state", f"the host probe printed no facts: {error}") from None
    return HostState.from_facts(facts, stack, runtime)
