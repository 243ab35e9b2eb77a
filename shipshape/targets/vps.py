"""The VPS target (local and vps stacks): a host over SSH, nginx in front of two slots, a process runtime.

Each verb of `shipshape.targets.ReleaseTarget` becomes a few commands sent through one Runner, batched
into one round trip where it can be. How processes are prepared and run is the runtime's business
(shipshape/runtimes/: PM2 today); what a host holds is read by `shipshape.hoststate` in one round trip.
"""
from __future__ import annotations

import json
import shlex
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from shipshape import accounts, backup, gate, gate_watch, history, lock, nginx, notify
from shipshape import release_commands as rc
from shipshape.build import Artifact
from shipshape.hoststate import HostState, parse_state, state_command, write_slots_command
from shipshape.layout import Layout, other
from shipshape.progress import info
from shipshape.remote import RemoteError, Runner, Script
from shipshape.runtimes import Release, Slot
from shipshape.secrets import plain
from shipshape.targets.common import DeployFailed, pending_migrations

MIN_FREE_KB = 512 * 1024
LOG_TAIL = 30
POLL_S = 0.25  # how often the canary's watcher reads the access log
CANDIDATE_STEPS = ("start", "canary", "promote")  # an interrupted deploy's candidate may be running


def _verdict(out: str) -> dict:
    """The watcher's JSON line in a round trip's output."""
    return json.loads(next(line for line in reversed(out.splitlines()) if line.startswith('{"action"')))


@dataclass
class VpsTarget:
    stack: object
    layout: Layout
    runner: Runner
    runtime: object
    accounts: list = field(default_factory=list)  # (username, role, Sensitive password) to create
    env: dict = field(default_factory=dict)       # the release env file: NAME -> value (plain or Sensitive)
    hold: lock.Hold | None = None                 # the deploy lock, while this run holds it
    prefetched: tuple | None = None               # (artifact id, HostState) read with the lock
    probed: dict = field(default_factory=dict)    # {canary start: the gate's own probes so far, per slot}

    # -- reading ---------------------------------------------------------------------------------
    def port(self, slot: str) -> int:
        return nginx.slot_ports(self.stack)[slot]

    def read_state(self, artifact: Artifact | None = None) -> HostState:
        """The host's state; the first read under the lock is the one the lock's round trip brought."""
        if self.prefetched and self.prefetched[0] == (artifact and artifact.id):
            state, self.prefetched = self.prefetched[1], None
            return state
        return self._state(self.runner.run(self._state_command(artifact)).stdout)

    def _state_command(self, artifact: Artifact | None):
        return state_command(self.stack, self.layout, self.runtime, artifact and artifact.id)

    def _state(self, stdout: str) -> HostState:
        state = parse_state(stdout, self.stack, self.runtime)
        self.runner.add_secret(*state.secrets)
        return state

    def release(self, state: HostState, release_id: str) -> Release:
        return Release.from_manifest(self.layout, release_id, state.releases.get(release_id, {}))

    def new_release(self, release_id: str, artifact: Artifact) -> Release:
        return Release(release_id, self.layout.release(release_id), artifact.sha, artifact.kind, artifact.deps_hash,
                       artifact.image, artifact.workdir)

    def slot(self, name: str, release: Release) -> Slot:
        return Slot(name, self.port(name), release)

    @contextmanager
    def locked(self, task: str, artifact: Artifact | None = None):
        """The deploy lock and the host's state in one round trip. A task that died holding the lock (no
        process holds it any more) is reported and cleaned up after first."""
        with lock.held(self.runner, self.layout, task, stack=self.stack.name,
                       state=self._state_command(artifact)) as hold:
            self.hold = hold
            try:
                state = self._state(hold.state_text)
                if hold.interrupted:
                    self.recover(hold.interrupted, state)
                    state = self._state(self.runner.run(self._state_command(artifact)).stdout)
                self.prefetched = (artifact and artifact.id, state)
                yield
            finally:
                self.hold, self.prefetched = None, None

    def note(self, **fields) -> None:
        """Tell the lock what this run is doing (`fab lock` shows it; the next run recovers from it). Stops
        the run if its lock is gone (this process was suspended too long, or its connection dropped)."""
        if self.hold is None:
            return
        if self.hold.lost:
            raise DeployFailed("lock", "the deploy lock's holder on the host is gone (this run was suspended or "
                                       "its connection dropped): stopping before anything else changes")
        self.hold.note(**fields)

    def recover(self, was: lock.LockInfo, state: HostState) -> None:
        """After a task that died holding the lock: traffic back on the live slot, a candidate it started
        stopped, and an entry in the history; each said."""
        live, fields = state.slots.live, was.fields
        info(f"found an interrupted {was.task} by {was.who}" + (f" at step {was.step}" if was.step else "")
             + f", {lock.format_age(was.age(state.clock))} ago: no process holds its lock; cleaning up")
        if live and any(weight for slot, weight in state.weights.items() if slot != live):
            self.route({live: 100, other(live): 0})
            info(f"traffic back on slot {live} ({state.slots.release(live)})")
        candidate = fields.get("slot")
        proc = state.processes.get(candidate) if candidate else None
        if candidate and candidate != live and was.step in CANDIDATE_STEPS and proc is not None:
            self.stop(candidate)
            info(f"its candidate in slot {candidate} ({fields.get('release', '?')}) stopped")
        if fields.get("release"):
            self.record(history.Entry(fields["release"], fields.get("git_sha", ""), was.who, was.started,
                                      state.clock, "rolled_back" if was.step in ("canary", "promote") else "failed",
                                      "deploy", was.step, "interrupted: the deploying process died or lost its "
                                      f"connection; cleaned up by {lock.who()}"))

    # -- deploy verbs ------------------------------------------------------------------------------
    def preflight(self, state: HostState, artifact: Artifact) -> list[str]:
        """Go/no-go from the state already read; raises DeployFailed with the reason, returns notes."""
        if state.disk_kb < MIN_FREE_KB:
            raise DeployFailed("preflight", f"only {state.disk_kb // 1024} MB free on the host; "
                                            f"need {MIN_FREE_KB // 1024} MB")
        if not state.nginx_ok:
            raise DeployFailed("preflight", f"nginx -t fails on the live config: {state.nginx_error[-300:]}")
        pending = pending_migrations(artifact, state.schema)
        listed = ", ".join(pending) if pending else ("none" if pending is not None else "not listed (not Alembic's)")
        return [f"{state.disk_kb // 1024} MB free, nginx config valid", f"pending migrations: {listed}"]

    def upload(self, artifact: Artifact, state: HostState, release: Release | None = None) -> str:
        """The artifact (once per sha), then whatever else the runtime ships (docker: image layers)."""
        if state.has_artifact:
            sent = "already on the host"
        else:
            remote = self.layout.artifact(artifact.id)
            self.runner.put(artifact.path, remote + ".part")
            self.runner.run(["mv", "-f", remote + ".part", remote])
            sent = f"{artifact.path.stat().st_size // 1024} KiB sent"
        shipped = self.runtime.ship(self.runner, artifact, info)
        return f"artifact {sent}; {shipped}" if shipped else sent

    def prepare(self, release: Release, artifact: Artifact) -> str:
        """Unpack, then the runtime's preparation (dependencies, shared dirs, env file): one round trip."""
        env = "".join(f"{name}={plain(value)}\n" for name, value in self.env.items())
        static = self.stack.app.static
        copy = rc.static_copy_commands(self.layout, self.runtime, release, static.dir) if static else []
        out = self.runner.run_all([rc.unpack_command(self.layout, artifact.id, release.id),
                                   *self.runtime.prepare(release), *copy], stdin=env).stdout
        return (f"releases/{release.id} ({release.kind}); " + " ".join(out.split())
                + (f"; {static.dir}/ copied to static/{release.id}" if static else ""))

    def backup(self) -> str:
        backup_id = backup.new_backup_id(label="predeploy")
        self.runner.run_all(backup.backup_commands(self.stack, self.layout, backup_id))
        return f"backups/{backup_id}.dump"

    def migrate(self, release: Release, state: HostState | None = None) -> list[str]:
        """The app's migrate command, then its create-account command for each check account, unless
        `state` shows the host created these very accounts in this database already (shipshape.accounts)."""
        lines = []
        if self.stack.app.migrate:
            out = self.runner.run(self.runtime.run_once(release, self.stack.app.migrate)).stdout
            lines += out.splitlines()[-4:]
        command = self.stack.app.create_account
        if self.accounts and command:
            mark = state and accounts.fingerprint(state.secrets, state.database_id, command, self.accounts)
            if mark and mark == state.accounts_mark:
                return [*lines, "check accounts: unchanged"]
            stdin = "".join(f"{user} {role} {password.reveal()}\n" for user, role, password in self.accounts)
            save = [accounts.write_command(self.layout, mark)] if mark else []
            self.runner.run_all([rc.accounts_command(self.runtime, release, command), *save], stdin=stdin)
            lines.append(f"check accounts: {', '.join(user for user, _, _ in self.accounts)}")
        return lines

    def start(self, slot: Slot, traffic_back: list = ()) -> None:
        """Start `slot` then wait for readiness on the host, to canary.readiness_timeout: one round trip.
        Not ready: DeployFailed with the last lines the process printed (masked) and where its log is."""
        probe = rc.readiness_command(slot.port, self.stack.app.readiness_path, self.stack.canary.readiness_timeout)
        try:
            self.runner.run_all([*traffic_back, *self.runtime.start(slot), *self.static_link(slot), probe])
        except RemoteError as error:
            reason = " / ".join(error.stderr.strip().splitlines()[-3:]) or str(error)
            tail = self.runner.run(self.runtime.log_tail(slot, LOG_TAIL), check=False).stdout.rstrip()
            log = self.runtime.log_path(slot)  # a file, or the command that shows the log (docker logs)
            where = f"{self.stack.host.address}:{log}" if log.startswith("/") else f"`{log}` on {self.stack.host.address}"
            raise DeployFailed("start", f"{reason}\nlast {LOG_TAIL} lines of its output (full log: {where}):\n"
                                        + (tail or "(nothing)")) from None

    def static_link(self, slot: Slot) -> list:
        """shipshape:app.static: the slot's link moves to its release's copy (nothing when unset)."""
        return [rc.static_link_command(self.layout, slot.name, slot.release_id)] if self.stack.app.static else []

    def route_commands(self, weights: dict) -> list:
        """Commands that write, test and gracefully load nginx weights."""
        return nginx.apply_commands(self.layout, nginx.site_config(self.stack, self.layout, weights))

    def route(self, weights: dict) -> None:
        self.runner.run_all(self.route_commands(weights))

    def canary_step(self, slot: Slot, live: str, percent: int, since: float) -> gate.Step:
        """Move `percent` of traffic to `slot`, then the watcher on the host judges the step from the access log
        (every canary.poll) until the gate decides, probing both slots while traffic is thin; then a readiness
        probe. One round trip; `since` is when the canary began, so evidence accumulates over the steps."""
        self.note(canary={"since": since, "candidate": slot.port, "live": self.port(live), "percent": percent})
        out = self.runner.run_all([*self.route_commands({slot.name: percent, live: 100 - percent}),
                                   Script(gate_watch.command(self.gate_params(slot.port, self.port(live), since))),
                                   rc.readiness_command(slot.port, self.stack.app.readiness_path, 0)]).stdout
        verdict = _verdict(out)
        self.probed = {since: verdict.get("probed", {})}  # evidence accumulates over the canary's steps
        return gate.Step.from_json(verdict)

    def gate_params(self, candidate: int, live: int, since: float, look: bool = False) -> dict:
        """The watcher's parameters (shipshape/gate_watch.py); `look`: one read of the log, no probes."""
        canary, app = self.stack.canary, self.stack.app
        return {"log": self.layout.access_log, "since": since, "candidate": candidate, "live": live,
                "latency_ms": canary.max_latency_ms, "policy": vars(gate.Policy.of(canary)),
                "probe_paths": list(dict.fromkeys([app.readiness_path, *canary.probe_paths])),
                "probe_rate": 0 if look else canary.probe_rate, "poll": POLL_S, "limit": 0 if look else canary.step_limit,
                "probed": self.probed.get(since, {})}

    def look(self, canary: dict) -> gate.Step:
        """Both slots' figures since the canary began (`canary` as the deploy noted it in the lock)."""
        params = self.gate_params(canary["candidate"], canary["live"], canary["since"], look=True)
        return gate.Step.from_json(_verdict(self.runner.run(Script(gate_watch.command(params))).stdout))

    def paused(self, slot: Slot, live: str, since: float) -> tuple[dict | None, gate.Step]:
        """While a deploy is paused: what `fab canary` sent (then removed), and the gate's look: one round trip."""
        control = shlex.quote(self.layout.canary_control)
        params = self.gate_params(slot.port, self.port(live), since, look=True)
        out = self.runner.run_all([Script(f"if [ -e {control} ]; then cat {control}; rm -f {control}; fi"),
                                   Script(gate_watch.command(params))]).stdout
        sent = next((json.loads(line) for line in out.splitlines() if line.startswith('{"command"')), None)
        return sent, gate.Step.from_json(_verdict(out))

    def send(self, command: str) -> None:
        """`fab canary promote|resume|abort`: leave the command for the paused deploy."""
        body = json.dumps({"command": command, "who": lock.who()}, sort_keys=True)
        self.runner.run(Script(f"printf '%s\\n' {shlex.quote(body)} > {shlex.quote(self.layout.canary_control)}"))

    def stop(self, slot: str) -> None:
        self.runner.run_all(self.runtime.stop(slot))

    def slot_entry(self, slot: Slot) -> dict:
        return {"release": slot.release_id, "git_sha": slot.release.git_sha, "port": slot.port, "started": time.time()}

    def promote(self, state: HostState, slot: Slot, entry: history.Entry) -> list[str]:
        """slots.json (atomic) + history line + retention prune: one round trip; returns what it pruned."""
        slots = state.slots
        slots.live, slots.weights = slot.name, {slot.name: 100, other(slot.name): 0}
        slots.slots[slot.name] = self.slot_entry(slot)
        keep = {slot.release_id, slots.release(other(slot.name))}
        doomed = rc.prune_plan([*state.releases, slot.release_id], self.stack.retention.releases, keep)
        self.runner.run_all([write_slots_command(self.layout, slots),
                             history.record_command(self.layout, entry, self.runner.secrets),
                             rc.prune_command(self.layout, doomed), *self.runtime.forget(doomed),
                             # transfers a killed deploy left half done (the lock is ours: none is running)
                             Script(f"rm -f {shlex.quote(self.layout.artifacts)}/*.part"),
                             *self.runtime.save()])  # a reboot brings back both slots as they are now
        return doomed

    def switch(self, state: HostState, slot: Slot, entry: history.Entry | None, warm: bool) -> None:
        """Readiness probe of `slot`, all traffic to it, slots.json, history line, the runtime's save for
        a reboot: ONE round trip."""
        slots = state.slots
        if not (warm and slots.slots.get(slot.name)):
            slots.slots[slot.name] = self.slot_entry(slot)
        slots.live, slots.weights = slot.name, {slot.name: 100, other(slot.name): 0}
        record = [history.record_command(self.layout, entry, self.runner.secrets)] if entry else []
        probe = rc.readiness_command(slot.port, self.stack.app.readiness_path, 2)
        try:
            self.runner.run_all([probe, *self.static_link(slot), *self.route_commands(slots.weights),
                                 write_slots_command(self.layout, slots), *record, *self.runtime.save()])
        except RemoteError as error:
            raise DeployFailed(entry.kind if entry else "restart",
                               " / ".join(error.stderr.strip().splitlines()[-3:]) or str(error)) from None

    def retire(self, state: HostState, slot: str) -> None:
        """Stop `slot` and forget it in slots.json (after a restart moved its release to the other slot)."""
        state.slots.slots[slot] = None
        self.runner.run_all([*self.runtime.stop(slot), write_slots_command(self.layout, state.slots),
                             *self.runtime.save()])

    def status_lines(self, state: HostState) -> list[str]:
        """`fab status`: per slot its weight, release and process; the kept releases; the lock."""
        lines = []
        for slot, entry in state.slots.slots.items():
            proc = state.processes.get(slot)
            run = f"{'online' if proc and proc.online else 'stopped'}, {proc.restarts} restarts" if proc else "no process"
            mark = "*" if slot == state.slots.live else " "
            lines.append(f"{mark} slot {slot} :{self.port(slot)}  weight {state.weights.get(slot, 0):>3}  "
                         f"{entry['release'] if entry else '-':<32} {run}")
        lines.append(f"kept releases: {', '.join(sorted(state.releases, reverse=True)) or 'none'}")
        lines.append(f"lock: {lock.describe(state.lock, self.stack.name) if state.lock else 'free'}")
        return lines

    # -- audit -------------------------------------------------------------------------------------
    def record(self, entry: history.Entry) -> None:
        self.runner.run(history.record_command(self.layout, entry, self.runner.secrets), check=False)

    def notify(self, event: str, entry: history.Entry) -> None:
        notify.notify(self.stack, event, release=entry.release, git_sha=entry.git_sha, who=entry.who,
                      step=entry.step, reason=entry.reason)
