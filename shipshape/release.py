"""`fab deploy`: the whole release flow, top-down, over any `shipshape.targets.ReleaseTarget`.

lock, preflight, upload, prepare, backup, migrate, start beside the live slot (readiness-gated),
canary (gated on the candidate's error rate and latency), promote (slots, history, retention), notify,
unlock. Any failure (Ctrl-C and SIGTERM included) undoes what this run did: traffic back on the old
slot, the new process stopped, slots.json untouched; the history and the webhook say how it ended.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from datetime import datetime

from shipshape import history, report
from shipshape import release_commands as rc
from shipshape.build import Artifact
from shipshape.layout import other
from shipshape.progress import info, step
from shipshape.remote import RemoteError
from shipshape.targets import DeployFailed, ReleaseTarget, who


def committed_epoch(artifact: Artifact) -> float | None:
    try:
        return datetime.fromisoformat(artifact.committed).timestamp()
    except ValueError:
        return None


def already_serving(state, artifact: Artifact) -> bool:
    """The live slot runs this very build, and its process is up (after a reboot it is not: deploy)."""
    live = state.slots.live
    process = state.processes.get(live) if live else None
    return bool(live and state.slots.slots[live]["git_sha"] == artifact.sha and process and process.online
                and not artifact.env_override and "dirty" not in artifact.id)


def deploy(t: ReleaseTarget, artifact: Artifact, pause_at: int | None = None) -> str | None:
    """Ship `artifact` to the target; returns the new release id (None: it already serves). With `pause_at`
    the canary holds at that step until someone runs `fab canary promote|resume|abort`."""
    with t.locked("deploy", artifact):
        with step("preflight (state, disk, nginx -t, migrations)"):
            state = t.read_state(artifact)
            for note in t.preflight(state, artifact):
                info(note)
        if already_serving(state, artifact):
            info(f"{artifact.sha[:12]} already serves from slot {state.slots.live}: nothing to do")
            return None
        return Deploy(t, artifact, state, pause_at).run()


CONTROLS = ("promote", "resume", "abort")  # what `fab canary` may send a paused deploy
PAUSE_POLL_S = 0.5  # a paused deploy reads its control file and the gate's figures this often


class Deploy:
    """One run of the flow after preflight; `done` remembers what to undo."""

    def __init__(self, t: ReleaseTarget, artifact: Artifact, state, pause_at: int | None = None):
        self.t, self.artifact, self.state, self.pause_at = t, artifact, state, pause_at
        self.step, self.done, self.started = "upload", set(), time.time()
        self.live, self.idle = state.slots.live, state.slots.idle
        self.release = t.new_release(rc.new_release_id(artifact.sha, "dirty" in artifact.id), artifact)
        self.slot = t.slot(self.idle, self.release)
        self.phases, self.steps = [], []  # the entry's report (shipshape/report.py)

    def run(self) -> str:
        t, app, canary = self.t, self.t.stack.app, self.t.stack.canary
        try:
            with self.phase("upload", f"upload artifact {self.artifact.id}"):
                info(t.upload(self.artifact, self.state, self.release))
            with self.phase("prepare", f"prepare {self.release.id} ({self.release.kind}: dependencies, shared dirs, env)"):
                info(t.prepare(self.release, self.artifact))
            with self.phase("backup", "backup database (pg_dump)"):
                info(t.backup())
            with self.phase("migrate", f"migrate ({app.migrate or 'no migrate command'})"):
                for line in t.migrate(self.release, self.state):
                    info(line)
            with self.phase("start", f"start {self.release.id} in slot {self.idle} (readiness-gated)"):
                self.start()
            with self.phase("canary", f"canary (steps {canary.steps}, bake {canary.interval:g}s)"):
                self.canary()
            with self.phase("promote", "promote: slots.json, history, retention"):
                pruned = t.promote(self.state, self.slot, self.entry("success"))
                info(f"slot {self.idle} live; old slot kept warm" + (f"; pruned {', '.join(pruned)}" if pruned else ""))
        except BaseException as error:
            self.undo(error)
            raise DeployFailed(self.step, _reason(error)) from None
        t.notify("success", self.entry("success"))
        return self.release.id

    @contextmanager
    def phase(self, name: str, title: str):
        """A step of the flow: remembered for the undo, the history and its report, noted in the lock (a run
        that finds this one interrupted cleans up after it), shown with its title."""
        self.step, began = name, time.time()
        self.t.note(step=name, slot=self.idle, release=self.release.id, git_sha=self.artifact.sha)
        self.phases.append(report.phase(name, began - self.started))
        outcome = "failed"
        try:
            with step(title):
                yield
            outcome = "ok"
        finally:
            self.phases[-1] = report.phase(name, began - self.started, time.time() - began, outcome)

    def start(self) -> None:
        back = []
        if self.state.weights.get(self.idle):  # an interrupted deploy left traffic on the idle slot
            back = self.t.route_commands({self.live or other(self.idle): 100, self.idle: 0})
        self.done.add("started")
        self.t.start(self.slot, back)

    def canary(self) -> None:
        steps = self.t.stack.canary.steps if self.live else (100,)  # nothing to compare with on a first deploy
        since = self.state.clock  # the target's clock at preflight: the gate weighs every answer since
        if self.pause_at and self.pause_at not in steps:
            info(f"no pause: a first deploy goes straight to 100% (nothing to compare {self.pause_at}% with)")
        for percent in steps:
            self.done.add("traffic")
            self.gate(percent, self.t.canary_step(self.slot, other(self.idle), percent, since))
            if percent == self.pause_at and percent < 100 and self.hold(percent, since) == "promote":
                self.t.route({self.idle: 100, other(self.idle): 0})
                info("all traffic on the candidate")
                return

    def hold(self, percent: int, since: float) -> str:
        """Paused at `percent` until `fab canary promote|resume|abort` (returns promote or resume). The gate
        keeps watching meanwhile: a candidate it finds worse is rolled back as in any step."""
        info(f"paused at {percent}%: `fab canary status|promote|resume|abort --stack {self.t.stack.name}` "
             "from another terminal")
        self.t.note(paused=percent)
        while True:
            sent, look = self.t.paused(self.slot, other(self.idle), since)
            if look.action == "rollback":
                raise DeployFailed("canary", f"while paused at {percent}%: {look.reason}")
            command = (sent or {}).get("command")
            if command in CONTROLS:
                self.t.note(paused=None)
                info(f"{command} by {sent.get('who', 'someone')}")
                if command == "abort":
                    raise DeployFailed("canary", f"aborted at {percent}% by {sent.get('who', 'someone')}")
                return command
            time.sleep(PAUSE_POLL_S)

    def gate(self, percent: int, result) -> None:
        """The step's verdict (shipshape/gate.py): anything but advance stops the deploy, and says why."""
        info(f"{percent}%: {result.summary()}")
        start = report.step_start(self.phases, self.steps)
        self.steps.append(report.canary_step(percent, result, start, time.time() - self.started))
        if result.action == "rollback":
            raise DeployFailed("canary", f"at {percent}%: {result.reason}")
        if result.action != "advance":
            raise DeployFailed("canary", f"no decision at {percent}% within {self.t.stack.canary.step_limit:g}s "
                                         f"(shipshape:canary.max_bake): {result.reason}")

    def entry(self, outcome: str, reason: str | None = None) -> history.Entry:
        return history.Entry(self.release.id, self.artifact.sha, who(), self.started, time.time(), outcome,
                             "deploy", None if outcome == "success" else self.step, reason,
                             committed_epoch(self.artifact), report.build(self.phases, self.steps))

    def undo(self, error: BaseException) -> None:
        """Traffic back to the old slot if it moved, the candidate stopped if it started; record, notify."""
        with step(f"undo ({self.step} failed)"):
            if "traffic" in self.done:
                _best_effort(self.t.route, {other(self.idle): 100, self.idle: 0})
            if "started" in self.done:
                _best_effort(self.t.stop, self.idle)
            outcome = "rolled_back" if "traffic" in self.done else "failed"
            entry = self.entry(outcome, _reason(error))
            self.t.record(entry)
            self.t.notify("rollback" if outcome == "rolled_back" else "failure", entry)


def _best_effort(action, *args) -> None:
    try:
        action(*args)
    except Exception as error:  # the undo goes on: the next step may still restore service
        info(f"undo: {type(error).__name__}: {error}")


def _reason(error: BaseException) -> str:
    if isinstance(error, KeyboardInterrupt):
        return "interrupted (Ctrl-C or SIGTERM)"
    if isinstance(error, DeployFailed):
        return error.reason
    if isinstance(error, RemoteError):
        tail = error.stderr.strip().splitlines()[-3:]
        return " / ".join(tail) or str(error)
    return f"{type(error).__name__}: {error}"
