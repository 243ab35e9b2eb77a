"""What a Cloud Run service holds for `fab`, read from the service itself, and the traffic lists it writes.

Everything every operator's `fab` must see lives on the service, as annotations (docs/cloudrun.md):

    shipshape.dev/slots     the slots.json of a host: live slot, and per slot its release and revision
    shipshape.dev/lock      the deploy lock's owner (JSON), set and cleared with the service's etag
    shipshape.dev/history   the last HISTORY_KEEP history lines (JSON lines, masked)

and on each revision `fab` creates (from the template): shipshape.dev/release and shipshape.dev/git-sha.
The two blue/green slots of a host become the two revisions in play: the serving one and the candidate.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from google.cloud import run_v2

from shipshape import history, lock
from shipshape.hoststate import Slots
from shipshape.runtimes import ProcessState

PREFIX = "shipshape.dev/"
SLOTS, LOCK, HISTORY = PREFIX + "slots", PREFIX + "lock", PREFIX + "history"
RELEASE, GIT_SHA = PREFIX + "release", PREFIX + "git-sha"
HISTORY_KEEP = 100          # ~30 KB of annotation: far below the 256 KB Kubernetes-style limit
REPORTS_KEEP = 10           # deploy reports (a few KB each) only on the newest lines: ~60 KB at most
CANDIDATE_TAG = "candidate"  # the new revision's tag URL during a deploy
# What a release changes on the service, in Pulumi's property paths: infra/service.py ignores them all
# unless shipshape:gcp.pulumi_owns_release, so `pulumi up` never undoes a release (tests/infra).
PULUMI_FIELDS_FAB_WRITES = ("template.containers[0].image", "template.revision", "template.annotations",
                            "template.containers[0].envs[0]", "template.containers[0].envs[1]", "traffics")
RELEASE_ENV = ("RELEASE_ID", "GIT_SHA")  # the app contract's; infra/service.py declares them first


def with_release_env(container, release_id: str, git_sha: str, override: dict | None = None) -> None:
    """Set RELEASE_ID and GIT_SHA on the container, first in its env list (where Pulumi ignores them),
    and the app's shipshape.env values (they win, as on a host)."""
    values = dict(zip(RELEASE_ENV, (release_id, git_sha)))
    extra = {k: v for k, v in (override or {}).items() if k not in values}
    rest = [e for e in container.env if e.name not in values and e.name not in extra]
    container.env = ([run_v2.EnvVar(name=k, value=v) for k, v in values.items()] + rest
                     + [run_v2.EnvVar(name=k, value=v) for k, v in extra.items()])
BY_REVISION = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION
LATEST = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST


def revision_name(service: str, release_id: str) -> str:
    """`<service>-<release id>`: Cloud Run's rule (the service's name, then lowercase, digits, hyphens)."""
    name = f"{service}-{release_id}".lower()
    if len(name) > 63:
        raise ValueError(f"revision name {name!r} is over 63 characters: shorten shipshape:app.name")
    return name


def is_ready(resource) -> bool:
    """A revision's (or service's) Ready condition is true."""
    conditions = getattr(resource, "conditions", None) or []
    return any(c.type_ == "Ready" and c.state == run_v2.Condition.State.CONDITION_SUCCEEDED for c in conditions)


def not_ready_reason(revision) -> str:
    for c in revision.conditions:
        if c.type_ == "Ready" and c.message:
            return c.message
    return "not ready"


def serving(service) -> dict[str, int]:
    """revision -> percent actually served now (traffic_statuses; LATEST resolved to the latest ready)."""
    served: dict[str, int] = {}
    for status in service.traffic_statuses:
        revision = status.revision or (service.latest_ready_revision if status.type_ == LATEST else "")
        if revision and status.percent:
            name = revision.rsplit("/", 1)[-1]
            served[name] = served.get(name, 0) + status.percent
    return served


def tag_urls(service) -> dict[str, str]:
    return {status.tag: status.uri for status in service.traffic_statuses if status.tag and status.uri}


def traffic(percents: dict[str, int], tags: dict[str, str] = None) -> list[run_v2.TrafficTarget]:
    """An explicit traffic list: one entry per revision with a share or a tag; shares sum to 100."""
    tags = tags or {}
    by_revision = {revision: tag for tag, revision in tags.items()}
    if sum(percents.values()) != 100:
        raise ValueError(f"traffic {percents} does not sum to 100")
    names = [r for r, p in percents.items() if p] + [r for r in by_revision if not percents.get(r)]
    return [run_v2.TrafficTarget(type_=BY_REVISION, revision=name, percent=percents.get(name, 0),
                                 tag=by_revision.get(name, "")) for name in dict.fromkeys(names)]


def appended(history_text: str, line: str) -> str:
    """The history annotation with `line` added, keeping the newest HISTORY_KEEP lines, and the deploy
    report (shipshape/report.py) only on the newest REPORTS_KEEP of them."""
    lines = [*filter(str.strip, history_text.splitlines()), line][-HISTORY_KEEP:]
    return "\n".join([*map(_without_report, lines[:-REPORTS_KEEP]), *lines[-REPORTS_KEEP:]])


def _without_report(line: str) -> str:
    data = _json(line)
    if not isinstance(data, dict) or "report" not in data:
        return line
    del data["report"]
    return json.dumps(data, sort_keys=True)


@dataclass
class CloudRunState:
    """The service read once: the flows read it exactly as they read a host's state (hoststate.HostState)."""

    clock: float
    service: object                       # run_v2.Service, with its etag
    revisions: dict                       # short name -> run_v2.Revision
    slots: Slots
    releases: dict                        # release id -> {"sha", "revision", "image", "ready"}
    weights: dict                         # slot -> percent served now
    processes: dict                       # slot -> ProcessState (online: the revision is Ready)
    lock: object                          # lock.LockInfo | None
    history: list = field(default_factory=list)
    stray: dict = field(default_factory=dict)  # revision -> percent served outside the two slots
    first: str | None = None              # why this is a first fab release, when it is
    schema: set = field(default_factory=set)
    has_artifact: bool = False

    @classmethod
    def read(cls, service, revisions: list) -> "CloudRunState":
        by_name = {r.name.rsplit("/", 1)[-1]: r for r in revisions}
        annotations = dict(service.annotations)
        slots = Slots.from_dict(_json(annotations.get(SLOTS)) or {})
        served = serving(service)
        first = None
        if slots.live is None:
            first = _adopt(slots, served, by_name)
        releases = {r.annotations[RELEASE]: {"sha": r.annotations.get(GIT_SHA, ""), "revision": name,
                                             "image": r.containers[0].image if r.containers else "",
                                             "ready": is_ready(r)}
                    for name, r in by_name.items() if RELEASE in r.annotations}
        for entry in filter(None, slots.slots.values()):  # a revision pulumi made, adopted as a slot
            releases.setdefault(entry["release"], {"sha": entry.get("git_sha", ""), "revision": entry["revision"],
                                                   "image": entry.get("image", ""),
                                                   "ready": is_ready(by_name.get(entry["revision"]))})
        slot_of = {e["revision"]: s for s, e in slots.slots.items() if e}
        weights = {s: 0 for s in slots.slots}
        stray = {}
        for revision, percent in served.items():
            if revision in slot_of:
                weights[slot_of[revision]] += percent
            else:
                stray[revision] = percent
        processes = {s: ProcessState(s, is_ready(by_name.get(e["revision"])), None, 0, e["release"])
                     for s, e in slots.slots.items() if e}
        return cls(time.time(), service, by_name, slots, releases, weights, processes,
                   lock.parse(annotations.get(LOCK, "")), history.parse(annotations.get(HISTORY, "")),
                   stray, first)

    def revision_of(self, slot: str | None) -> str | None:
        entry = self.slots.slots.get(slot) if slot else None
        return entry["revision"] if entry else None

    def release_of(self, revision: str) -> str | None:
        """The release a revision carries (for one `pulumi up` made and fab adopted: its own name)."""
        return next((rid for rid, meta in self.releases.items() if meta["revision"] == revision), None)


def _adopt(slots: Slots, served: dict, revisions: dict) -> str:
    """No fab release yet: the revision serving most (from `pulumi up`) becomes the live slot, to canary
    against and roll back to. Returns what the deploy says about it."""
    ready = {r: p for r, p in served.items() if is_ready(revisions.get(r))}
    if not ready:
        return "first deploy: no revision serves yet; the new one takes all traffic once it is ready"
    revision = max(ready, key=ready.get)
    image = revisions[revision].containers[0].image if revisions[revision].containers else ""
    slots.live = "a"
    slots.slots["a"] = {"release": revision, "git_sha": "", "revision": revision, "image": image, "started": 0}
    return (f"first fab release on this service: {revision} (made by `pulumi up`) serves now; it is kept "
            "as the live slot to canary against and to roll back to")


def _json(text: str | None):
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None
