"""What a host holds, read in ONE round trip, and slots.json (docs/host-state.md) written atomically.

`state_command` prints `@@section` blocks (host clock, slots.json, kept releases and their manifests,
disk, `nginx -t`, served weights, PM2 processes, lock, schema revision, ...); `parse_state` reads them.
Every task starts here: read state, then do only the difference.
"""
from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field

from shipshape import lock, nginx
from shipshape.layout import SLOTS, Layout
from shipshape.remote import Command, Script, render


@dataclass
class Slots:
    """slots.json: the live slot, the weights after the last completed step, the release per slot."""

    live: str | None = None
    weights: dict = field(default_factory=lambda: {s: 0 for s in SLOTS})
    slots: dict = field(default_factory=lambda: {s: None for s in SLOTS})

    @classmethod
    def parse(cls, text: str) -> "Slots":
        if not text.strip():
            return cls()
        data = json.loads(text)
        return cls(data.get("live"), data.get("weights") or {}, {s: data.get("slots", {}).get(s) for s in SLOTS})

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


def _section(name: str, command: Command) -> str:
    # A leading newline: some outputs (pm2 jlist) do not end with one.
    return f"printf '\\n@@{name}\\n'\n( {render(command)} ) 2>&1 || true"


def state_command(stack, layout: Layout, runtime, artifact_sha: str | None = None) -> Command:
    """Everything a task needs to decide, in one round trip."""
    q = shlex.quote
    db = stack.database
    sections = {
        "time": Script("date +%s.%N"),
        "slots": Script(f"cat {q(layout.slots_file)} 2>/dev/null"),
        "releases": Script(f"cd {q(layout.releases)} 2>/dev/null && for r in *; do [ -f \"$r/RELEASE\" ] && "
                           "echo \"$r $(tr -d '\\n' < \"$r/RELEASE\")\"; done"),
        "disk_kb": Script(f"df -Pk {q(layout.root)} | awk 'NR == 2 {{ print $4 }}'"),
        "nginx_test": Script(render(nginx.config_test_command(layout)) + " && echo ok"),
        "weights": nginx.current_weights_command(layout),
        "processes": runtime.status_command(),
        "lock": lock.read_command(layout),
        # Read only so the Runner can mask these values in everything it prints or raises.
        "secrets": Script(f"sed -n 's/^[A-Z_]*=//p' {q(layout.secrets_env)}"),
        "schema": Script(f"cd / && runuser -u postgres -- psql -p {db.port} -d {q(db.name)} -tAc "
                         "'SELECT version_num FROM alembic_version' 2>/dev/null"),
    }
    if artifact_sha:
        sections["artifact"] = Script(f"test -f {q(layout.artifact(artifact_sha))} && echo yes")
    return Script("\n".join(_section(name, command) for name, command in sections.items()))


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
    secrets: list


def parse_sections(stdout: str) -> dict[str, str]:
    sections, name = {}, None
    for line in stdout.splitlines():
        if line.startswith("@@"):
            name = line[2:].strip()
            sections[name] = ""
        elif name:
            sections[name] += line + "\n"
    return sections


def parse_state(stdout: str, stack, runtime) -> HostState:
    s = parse_sections(stdout)
    releases = {}
    for line in s.get("releases", "").splitlines():
        rid, _, manifest = line.partition(" ")
        try:
            releases[rid] = json.loads(manifest)
        except ValueError:
            continue  # a release dir being unpacked right now, or damaged: not a rollback target
    try:
        processes = runtime.parse_status(s.get("processes", ""))
    except ValueError:
        processes = {}
    nginx_out = s.get("nginx_test", "").strip()
    return HostState(
        clock=float(s.get("time", "0").strip() or 0), slots=Slots.parse(s.get("slots", "")), releases=releases,
        disk_kb=int(s.get("disk_kb", "0").strip() or 0), nginx_ok=nginx_out.endswith("ok"),
        nginx_error=nginx_out, weights=nginx.parse_current_weights(s.get("weights", ""), stack),
        processes=processes, lock=lock.parse(s.get("lock", "")),
        schema=set(s.get("schema", "").split()),
        has_artifact=s.get("artifact", "").strip() == "yes",
        secrets=[v for v in s.get("secrets", "").split() if len(v) >= 8 and "*" not in v])
