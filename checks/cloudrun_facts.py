"""What the Cloud Run checks judge, as pure functions of the service read once (checks/test_cloudrun.py).

Each returns (what it saw, what is wrong): the checks assert on the faults and show the rest, and the
tests feed these functions services a real deploy cannot produce (statuses not summing to 100).
"""
from __future__ import annotations

from shipshape.gcp import INVOKER_ROLE, PUBLIC_MEMBERS
from shipshape.targets import cloudrun_state as cr

HOW_TO_FIX = "`fab rollback --to RELEASE` or `fab deploy` puts fab's record and the traffic back in step"


def serving_faults(state: cr.CloudRunState) -> tuple[str, list[str]]:
    """The revision serving all traffic is the one of the release the history last recorded as done.

    Other revisions with traffic are a fault unless a deploy holds the lock (its canary). With no fab
    release recorded yet, whatever `pulumi up` made may serve.
    """
    served = cr.serving(state.service)
    seen = ", ".join(f"{rev} {pct}% (release {state.release_of(rev) or '-'})" for rev, pct in served.items())
    seen = seen or "no revision serves"
    last = next((e for e in reversed(state.history) if e.outcome == "success"), None)
    if last is None:
        return f"{seen}; no fab release recorded yet", [] if served else ["no revision serves"]
    expected = state.releases.get(last.release, {}).get("revision")
    faults = []
    if expected is None:
        return seen, [f"the history's last release {last.release} ({last.kind}) has no revision on the "
                      f"service (deleted?): {HOW_TO_FIX}"]
    if not served.get(expected):
        faults.append(f"the history says {last.release} ({expected}) serves, but it has no traffic")
    others = {rev: pct for rev, pct in served.items() if rev != expected}
    if others and state.lock is None:
        faults.append("traffic goes outside fab's record: " + ", ".join(f"{r} {p}%" for r, p in others.items()))
    live = state.revision_of(state.slots.live)
    if live != expected:
        faults.append(f"the slots annotation names {live} live, the history {expected}")
    if faults:
        faults.append(HOW_TO_FIX)
    note = f"; a deploy holds the lock ({state.lock.task})" if others and state.lock else ""
    return f"{seen}; history: {last.release} ({last.kind}){note}", faults


def traffic_faults(service, revisions: dict) -> tuple[str, list[str]]:
    """Served traffic sums to 100 and every revision receiving some is ready."""
    total = sum(status.percent for status in service.traffic_statuses)
    served = cr.serving(service)
    faults = [] if total == 100 else [f"traffic statuses sum to {total}%, not 100%"]
    for revision, percent in served.items():
        if revision not in revisions:
            faults.append(f"{revision} receives {percent}% but does not exist")
        elif not cr.is_ready(revisions[revision]):
            faults.append(f"{revision} receives {percent}% but is not ready: {cr.not_ready_reason(revisions[revision])}")
    return ", ".join(f"{r} {p}%" for r, p in served.items()) + f" (sum {total}%)", faults


def scaling_faults(service, revisions: dict, expected: int) -> tuple[str, list[str]]:
    """Min instances of the service, its template and each serving revision is shipshape:gcp.min_instances."""
    found = {"template": service.template.scaling.min_instance_count}
    if service.scaling.min_instance_count:   # service-level scaling, when set, is what Cloud Run keeps warm
        found["service"] = service.scaling.min_instance_count
    for revision in cr.serving(service):
        if revision in revisions:
            found[revision] = revisions[revision].scaling.min_instance_count
    faults = [f"{where} keeps {count} instances warm, shipshape:gcp.min_instances is {expected}"
              for where, count in found.items() if count != expected]
    if faults:
        faults.append("`pulumi up` sets it from the stack file")
    return ", ".join(f"{where} {count}" for where, count in found.items()), faults


def invoker_faults(policy, public: bool) -> tuple[str, list[str]]:
    """allUsers may invoke the service exactly when shipshape:gcp.public says so."""
    members = sorted({m for b in policy.bindings if b.role == INVOKER_ROLE for m in b.members})
    open_to = [m for m in members if m in PUBLIC_MEMBERS]
    seen = f"{INVOKER_ROLE}: {', '.join(members) or 'nobody'}"
    if open_to and not public:
        return seen, [f"{', '.join(open_to)} may invoke the service but shipshape:gcp.public is false: remove the "
                      f"binding (`gcloud run services remove-iam-policy-binding`), or `pulumi up`"]
    if public and "allUsers" not in members:
        return seen, ["shipshape:gcp.public is true but allUsers may not invoke the service: users get 403; "
                      "`pulumi up` adds the binding"]
    return seen, []
