"""`fab canary status|promote|resume|abort`: a person in the loop of a running deploy's canary.

`fab deploy --pause-at 10` holds the canary at 10% (the gate still watching: a candidate it finds worse
is rolled back as in any step). From another terminal:

    fab canary status     both slots' requests, error and slow rates since the canary began, the gate's view
    fab canary promote    all traffic on the candidate now, then promote as after the last step
    fab canary resume     go on with the remaining steps, each gated
    fab canary abort      undo, exactly as a failed step does (traffic back, candidate stopped)

The deploy notes its canary (ports, start, step, pause) in the lock; these tasks read it there, and send
their command through a file the paused deploy reads every PAUSE_POLL_S.
"""
from __future__ import annotations

import time

from fabric import task

from deploy.release import STACK, failing_cleanly, target
from shipshape import lock
from shipshape.release import CONTROLS
from shipshape.targets import NotSupported

ACTIONS = ("status", *CONTROLS)
TAKEN_WITHIN_S = 15.0  # how long promote/resume/abort wait to see the paused deploy take the command


@task(positional=["action"], help={"action": f"one of {', '.join(ACTIONS)}", **STACK})
def canary(c, action, stack="local"):
    """Look at or steer a running deploy's canary: status, promote, resume, abort (see fab deploy --pause-at).

    Example: fab canary status --stack prod        (then: fab canary promote --stack prod)
    """
    with failing_cleanly(f"canary {action}"):
        if action not in ACTIONS:
            raise NotSupported(f"unknown action {action!r}: expected one of {', '.join(ACTIONS)}")
        t = target(stack, with_secrets=False)
        if t.stack.is_cloud:
            raise NotSupported(f"{t.stack.source} is a Cloud Run stack: its canary is not steered by hand yet "
                               "(docs/deploy.md)")
        holder = lock.status(t.runner, t.layout)
        noted = holder.fields.get("canary") if holder and holder.held else None
        if not noted:
            raise NotSupported(f"no deploy is in its canary on stack {stack}"
                               + (f" ({lock.describe(holder, stack)})" if holder else ""))
        paused = holder.fields.get("paused")
        where = f"paused at {paused}%" if paused else f"at {noted['percent']}%"
        print(f"deploy of {holder.fields.get('release', '?')} by {holder.who}: {where}")
        if action == "status":
            look = t.look(noted)
            for name, tally in (("candidate", look.candidate), ("live", look.live)):
                print(f"  {name:<9} :{noted[name]}  {tally.requests} requests, errors {tally.rate('errors'):.1%}, "
                      f"slow {tally.rate('slow'):.1%}")
            print(f"  gate: {look.reason}")
            return
        if not paused:
            raise NotSupported("the deploy is not paused: only a deploy started with --pause-at waits for "
                               f"`fab canary {action}`")
        t.send(action)
        deadline = time.monotonic() + TAKEN_WITHIN_S
        while time.monotonic() < deadline:
            now = lock.status(t.runner, t.layout)
            if not now or not now.held or not now.fields.get("paused"):
                print(f"{action}: taken by the deploy")
                return
            time.sleep(0.2)
        raise NotSupported(f"{action}: sent, but the deploy has not taken it within {TAKEN_WITHIN_S:g}s "
                           f"(see `fab canary status --stack {stack}`)")
