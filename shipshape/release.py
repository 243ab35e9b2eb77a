"""`fab deploy` as plain functions over a Runner: lock, preflight, upload, unpack, backup, migrate, start
beside the live slot, readiness, canary, promote. Any failure (Ctrl-C and SIGTERM included) undoes what
this run did: weights back to the old slot, the new process stopped, slots.json untouched.

Round trips: lock (2), state (1), upload (0-1), unpack+venv (1), backup (1), migrate (1),
start+readiness (1), one per canary step, promote (1).
"""
from __future__ import annotations

import re
import tarfile
import time
from datetime import datetime

from shipshape import backup, history, nginx
from shipshape import release_commands as rc
from shipshape.build import Artifact
from shipshape.hoststate import HostState
from shipshape.progress import info, step
from shipshape.remote import RemoteError
from shipshape.target import DeployFailed, Target, other, who

MIN_FREE_KB = 512 * 1024
REVISION = re.compile(r"^(down_)?revision\s*(?::[^=]*)?=\s*['\"]?(\w+)?", re.M)


def pending_migrations(artifact: Artifact, applied: set[str]) -> list[str]:
    """Revisions in the artifact that the database lacks, oldest first (read from the local artifact)."""
    parents = {}
    with tarfile.open(artifact.path) as tar:
        for member in tar.getmembers():
            if member.name.startswith("migrations/versions/") and member.name.endswith(".py"):
                found = {bool(m.group(1)): m.group(2) for m in REVISION.finditer(tar.extractfile(member).read().decode())}
                if found.get(False):
                    parents[found[False]] = None if found.get(True) == "None" else found.get(True)
    pending, current = [], next(iter(set(parents) - set(parents.values())), None)
    while current and current not in applied:
        pending.append(current)
        current = parents.get(current)
    return pending[::-1]


def preflight(state: HostState, artifact: Artifact) -> list[str]:
    """Go/no-go from the state already read; raises DeployFailed with the reason, returns notes."""
    if state.disk_kb < MIN_FREE_KB:
        raise DeployFailed("preflight", f"only {state.disk_kb // 1024} MB free on the host; need {MIN_FREE_KB // 1024} MB")
    if not state.nginx_ok:
        raise DeployFailed("preflight", f"nginx -t fails on the live config: {state.nginx_error[-300:]}")
    pending = pending_migrations(artifact, state.schema)
    return [f"{state.disk_kb // 1024} MB free, nginx config valid",
            f"pending migrations: {', '.join(pending) if pending else 'none'}"]


def committed_epoch(artifact: Artifact) -> float | None:
    try:
        return datetime.fromisoformat(artifact.committed).timestamp()
    except ValueError:
        return None


class Deploy:
    """One run of `fab deploy`; `done` remembers what to undo."""

    def __init__(self, target: Target, artifact: Artifact):
        self.t, self.artifact = target, artifact
        self.step, self.done, self.started = "lock", set(), time.time()
        self.manifest = {"sha": artifact.sha, "requirements_hash": artifact.requirements_hash,
                         "env_override": artifact.env_override}

    def run(self, state: HostState) -> str:
        self.state, slots = state, state.slots
        self.live, self.idle = slots.live, slots.idle
        self.release_id = rc.new_release_id(self.artifact.sha, "dirty" in self.artifact.id)
        self.slot = self.t.slot(self.idle, self.release_id, self.manifest)
        try:
            for name, action in (("upload", self.upload), ("unpack", self.unpack), ("backup", self.backup),
                                 ("migrate", self.migrate), ("start", self.start), ("canary", self.canary),
                                 ("promote", self.promote)):
                self.step = name
                with step(_TITLES[name].format(d=self)):
                    action()
        except BaseException as error:
            self.undo(error)
            raise DeployFailed(self.step, _reason(error)) from None
        return self.release_id

    def upload(self) -> None:
        if self.state.has_artifact:
            return info("already on the host")
        remote = self.t.layout.artifact(self.artifact.id)
        self.t.runner.put(self.artifact.path, remote + ".part")
        self.t.runner.run(["mv", "-f", remote + ".part", remote])

    def unpack(self) -> None:
        out = self.t.runner.run_all(rc.unpack_commands(
            self.t.layout, self.t.stack.host.app_user, self.artifact.id, self.release_id,
            self.artifact.requirements_hash)).stdout
        info(f"releases/{self.release_id}; " + " ".join(out.split()))

    def backup(self) -> None:
        backup_id = backup.new_backup_id(label="predeploy")
        self.t.runner.run_all(backup.backup_commands(self.t.stack, self.t.layout, backup_id))
        info(f"backups/{backup_id}.dump")

    def migrate(self) -> None:
        accounts = "".join(f"{u} {r} {p.reveal()}\n" for u, r, p in self.t.accounts)
        out = self.t.runner.run(rc.migrate_command(self.t.layout, self.t.stack, self.release_id,
                                                   self.artifact.requirements_hash, bool(accounts)),
                                stdin=accounts or None).stdout
        for line in out.splitlines()[-4:]:
            info(line)

    def start(self) -> None:
        commands = []
        if self.state.weights.get(self.idle):  # an interrupted deploy left traffic on the idle slot
            commands += self.t.weights({self.live or other(self.idle): 100, self.idle: 0})
        self.done.add("started")
        self.t.runner.run_all(commands + self.t.start(self.slot, self.manifest))

    def canary(self) -> None:
        canary = self.t.stack.canary
        steps = canary.steps if self.live else (100,)  # nothing to compare with on a first deploy
        offset = self.state.clock - time.time()
        for percent in steps:
            since = time.time() + offset
            self.done.add("traffic")
            weights = {self.idle: percent, other(self.idle): 100 - percent}
            out = self.t.runner.run_all([*self.t.weights(weights), rc.bake_command(canary.interval),
                                         rc.readiness_command(self.slot.port, self.t.stack.app.readiness_path, 0),
                                         nginx.traffic_stats_command(self.t.layout, self.slot.port, since)]).stdout
            self.gate(percent, nginx.parse_traffic_stats(out))

    def gate(self, percent: int, stats) -> None:
        canary = self.t.stack.canary
        info(f"{percent}%: {stats.requests} requests, error rate {stats.error_rate:.1%}, p95 {stats.p95_ms:.0f} ms")
        if stats.error_rate > canary.max_error_rate:
            raise DeployFailed("canary", f"error rate {stats.error_rate:.1%} at {percent}% > "
                               f"{canary.max_error_rate:.0%} ({stats.errors}/{stats.requests} requests)")
        if stats.requests and stats.p95_ms > canary.max_latency_ms:
            raise DeployFailed("canary", f"p95 latency {stats.p95_ms:.0f} ms at {percent}% > {canary.max_latency_ms} ms")

    def promote(self) -> None:
        slots = self.state.slots
        slots.live, slots.weights = self.idle, {self.idle: 100, other(self.idle): 0}
        slots.slots[self.idle] = self.t.slot_entry(self.slot)
        keep = {self.release_id, slots.release(other(self.idle))}
        doomed = rc.prune_plan([*self.state.releases, self.release_id], self.t.stack.retention.releases, keep)
        self.t.promote(slots, self.entry("success"), [rc.prune_command(self.t.layout, doomed)])
        info(f"slot {self.idle} live; old slot kept warm" + (f"; pruned {', '.join(doomed)}" if doomed else ""))
        self.t.notify("success", self.entry("success"))

    def entry(self, outcome: str, reason: str | None = None) -> history.Entry:
        return history.Entry(self.release_id, self.artifact.sha, who(), self.started, time.time(), outcome,
                             "deploy", None if outcome == "success" else self.step, reason, committed_epoch(self.artifact))

    def undo(self, error: BaseException) -> None:
        commands = []
        if "traffic" in self.done:
            commands += self.t.weights({other(self.idle): 100, self.idle: 0})
        if "started" in self.done:
            commands += self.t.stop(self.idle)
        with step(f"undo ({self.step} failed)"):
            if commands:
                self.t.runner.run_all(commands, check=False)
            outcome = "rolled_back" if "traffic" in self.done else "failed"
            self.t.record(self.entry(outcome, _reason(error)), "rollback" if outcome == "rolled_back" else "failure")


_TITLES = {"upload": "upload artifact {d.artifact.id}", "unpack": "unpack release + venv",
           "backup": "backup database (pg_dump)", "migrate": "migrate ({d.t.stack.app.migrate})",
           "start": "start {d.release_id} in slot {d.idle} (readiness-gated)",
           "canary": "canary (steps {d.t.stack.canary.steps}, bake {d.t.stack.canary.interval:g}s)",
           "promote": "promote: slots.json, history, retention"}


def _reason(error: BaseException) -> str:
    if isinstance(error, KeyboardInterrupt):
        return "interrupted (Ctrl-C or SIGTERM)"
    if isinstance(error, DeployFailed):
        return error.reason
    if isinstance(error, RemoteError):
        tail = error.stderr.strip().splitlines()[-3:]
        return " / ".join(tail) or str(error)
    return f"{type(error).__name__}: {error}"
