"""`fab rollback` and `fab restart` as plain functions over any `shipshape.targets.ReleaseTarget`.

Rollback to the warm previous slot is one round trip on a VPS: a readiness probe of that slot, the
traffic switch, slots.json and the history line. A release that is not warm is first started into the
idle slot, readiness-gated, exactly like a deploy's start.
"""
from __future__ import annotations

import time

from shipshape import history
from shipshape.progress import info, step
from shipshape.targets import DeployFailed, ReleaseTarget, who


def choose(state, to: str | None) -> str:
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


def rollback(t: ReleaseTarget, state, to: str | None = None) -> str:
    """Serve `to` (or the previous release) with all traffic; returns the release id."""
    started, target = time.time(), choose(state, to)
    idle = state.slots.idle
    proc = state.processes.get(idle)
    warm = state.slots.release(idle) == target and proc is not None and proc.online
    slot = t.slot(idle, t.release(state, target))
    if not warm:
        with step(f"start {target} in slot {idle} (not warm; readiness-gated)"):
            t.start(slot)
    with step(f"switch traffic to slot {idle} ({target})"):
        entry = history.Entry(target, slot.release.git_sha, who(), started, time.time(), "success", "rollback")
        t.switch(state, slot, entry, warm)
        t.notify("rollback", entry)
        info(f"slot {idle} serves {target} ({time.time() - started:.2f}s since start)")
    return target


def restart(t: ReleaseTarget, state) -> str:
    """Zero downtime: the live release again in the idle slot, readiness, switch, stop the old slot."""
    live = state.slots.live
    release_id = state.slots.release(live)
    if not release_id:
        raise DeployFailed("restart", "nothing is deployed yet")
    slot = t.slot(state.slots.idle, t.release(state, release_id))
    with step(f"start {release_id} in slot {slot.name} (readiness-gated)"):
        t.start(slot)
    with step(f"switch traffic to slot {slot.name}"):
        t.switch(state, slot, None, warm=False)
    with step(f"stop slot {live}"):
        t.retire(state, live)
    return release_id
