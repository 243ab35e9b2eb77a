"""`fab rollback` and `fab restart` as plain functions over a Target.

Rollback to the warm previous slot is one round trip: a readiness probe of that slot, the nginx weight
flip (graceful reload), slots.json and the history line. A release that is not warm is first started
from releases/ into the idle slot, readiness-gated, exactly like a deploy's start.
"""
from __future__ import annotations

import time

from shipshape import history
from shipshape import release_commands as rc
from shipshape.hoststate import HostState, write_slots_command
from shipshape.progress import info, step
from shipshape.remote import RemoteError
from shipshape.target import DeployFailed, Target, other, who


def choose(state: HostState, to: str | None) -> str:
    """The release to roll back to: `to`, else the idle slot's, else the newest kept one before live."""
    live = state.slots.release(state.slots.live)
    if not live:
        raise DeployFailed("rollback", "nothing is deployed yet (slots.json has no live slot)")
    kept = sorted(state.releases, reverse=True)
    if to:
        if to not in state.releases:
            raise DeployFailed("rollback", f"release {to!r} is not kept on the host; kept: {', '.join(kept) or 'none'}")
        target = to
    else:
        older = [r for r in kept if r < live]
        target = state.slots.release(state.slots.idle) or (older[0] if older else None)
    if not target:
        raise DeployFailed("rollback", "no previous release to roll back to")
    if target == live:
        raise DeployFailed("rollback", f"{target} is already serving")
    return target


def rollback(t: Target, state: HostState, to: str | None = None) -> str:
    """Serve `to` (or the previous release) with all traffic; returns the release id."""
    started, target = time.time(), choose(state, to)
    idle = state.slots.idle
    proc = state.processes.get(idle)
    warm = state.slots.release(idle) == target and proc is not None and proc.online
    if not warm:
        with step(f"start {target} in slot {idle} (not warm; readiness-gated)"):
            start(t, state, target)
    with step(f"switch traffic to slot {idle} ({target})"):
        flip(t, state, target, "rollback", started, warm)
    return target


def start(t: Target, state: HostState, release_id: str) -> None:
    manifest = state.releases[release_id]
    t.runner.run_all(t.start(t.slot(state.slots.idle, release_id, manifest), manifest))


def flip(t: Target, state: HostState, release_id: str, kind: str | None, started: float, warm: bool) -> None:
    """Readiness probe of the idle slot, weights flip, slots.json, history line: ONE round trip."""
    slots, idle = state.slots, state.slots.idle
    manifest = state.releases.get(release_id, {"sha": "", "requirements_hash": ""})
    slot = t.slot(idle, release_id, manifest)
    if not (warm and slots.slots.get(idle)):
        slots.slots[idle] = t.slot_entry(slot)
    slots.live, slots.weights = idle, {idle: 100, other(idle): 0}
    entry = kind and history.Entry(release_id, manifest.get("sha", ""), who(), started, time.time(), "success", kind)
    record = [history.record_command(t.layout, entry, t.runner.secrets)] if entry else []
    probe = rc.readiness_command(slot.port, t.stack.app.readiness_path, 2)
    try:
        t.runner.run_all([probe, *t.weights(slots.weights), write_slots_command(t.layout, slots), *record])
    except RemoteError as error:
        raise DeployFailed(kind or "restart", " / ".join(error.stderr.strip().splitlines()[-3:]) or str(error)) from None
    if entry:
        t.notify("rollback", entry)
    info(f"slot {idle} serves {release_id} ({time.time() - started:.2f}s since start)")


def restart(t: Target, state: HostState) -> str:
    """Zero downtime: the live release again in the idle slot, readiness, flip, stop the old slot."""
    started, live = time.time(), state.slots.live
    release_id = state.slots.release(live)
    if not release_id:
        raise DeployFailed("restart", "nothing is deployed yet")
    with step(f"start {release_id} in slot {state.slots.idle} (readiness-gated)"):
        start(t, state, release_id)
    with step(f"switch traffic to slot {state.slots.idle}"):
        flip(t, state, release_id, None, started, warm=False)
    with step(f"stop slot {live}"):
        state.slots.slots[live] = None
        t.runner.run_all([*t.stop(live), write_slots_command(t.layout, state.slots)])
    return release_id
