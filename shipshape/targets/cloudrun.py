"""The Cloud Run target: `pulumi up` made the service, its registry and its migrate job; `fab` ships into them.

A deploy (docs/cloudrun.md): push the image to the registry by digest, point the migrate job at it and
run it to completion, create the new revision with no traffic and the tag `candidate`, probe its
readiness through the tag URL, move traffic in the canary steps (the gate reads the revision's own
request and 5xx counts and p95 latency from Cloud Monitoring), then one update puts all traffic on it
and records slots and history. Every service write carries the etag of what this run last read or
wrote: a change by anyone else in between is refused by Google and reported, never overwritten.
"""
from __future__ import annotations

import json
import tarfile
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests

from shipshape import gate, history, lock, notify, registry
from shipshape import release_commands as rc
from shipshape.build import OVERRIDE_FILE, Artifact
from shipshape.gcp import Clients, ConcurrentChange, GcpError, invoker_headers
from shipshape.layout import other
from shipshape.progress import info
from shipshape.runtimes import NotSupported, Release, Slot
from shipshape.runtimes.docker import image_repo
from shipshape.secrets import read_secrets_file
from shipshape.targets import cloudrun_state as cr
from shipshape.targets.cloudrun_metrics import revision_stats
from shipshape.targets.common import DeployFailed

UPDATE_TIMEOUT_S = 900   # a revision's startup probe may take minutes (startup_probe failure_threshold)
JOB_TIMEOUT_S = 3600
LOCK_TRIES = 5
POLL_S = 1.0  # the canary reads Cloud Monitoring this often (Google ingests with up to ~3 min delay)


@dataclass
class CloudRunTarget:
    stack: object
    clients: Clients
    secrets: list = field(default_factory=list)  # Sensitive values: masked in history reasons
    state: cr.CloudRunState | None = None
    owner: str | None = None                     # our lock's JSON, while held
    candidate: dict = field(default_factory=dict)  # slot -> revision created by this run
    override: dict = field(default_factory=dict)   # the app's shipshape.env: this release's extra env

    @property
    def name(self) -> str:
        return self.clients.service_name(self.stack.app.name)

    @property
    def repository(self) -> str:
        cloud = self.stack.gcp
        repo = cloud.registry or f"{cloud.region}-docker.pkg.dev/{cloud.project}/{self.stack.app.name}"
        return f"{repo}/{self.stack.app.name}"

    # -- reading -------------------------------------------------------------------------------------
    def _read(self):
        return self.clients.call("read the Cloud Run service", self.clients.services.get_service, name=self.name)

    def read_state(self, artifact: Artifact | None = None) -> cr.CloudRunState:
        service = self._read()
        revisions = self.clients.call("list its revisions", self.clients.revisions.list_revisions, parent=self.name)
        self.state = cr.CloudRunState.read(service, list(revisions))
        return self.state

    def release(self, state: cr.CloudRunState, release_id: str) -> Release:
        manifest = state.releases.get(release_id)
        if not manifest:
            raise DeployFailed("rollback", f"release {release_id!r} has no revision on the service")
        return Release(release_id, manifest["revision"], manifest["sha"], "image", "", manifest["image"])

    def new_release(self, release_id: str, artifact: Artifact) -> Release:
        """Its revision is `<service>-<release id>`; its image the registry tag named after the release
        (unique: release ids are timestamps; the revision records the digest it resolved)."""
        return Release(release_id, cr.revision_name(self.stack.app.name, release_id), artifact.sha, "image", "",
                       f"{self.repository}:{release_id}", artifact.workdir)

    def slot(self, name: str, release: Release) -> Slot:
        return Slot(name, 0, release)

    # -- the lock: an annotation written with the etag ------------------------------------------------
    @contextmanager
    def locked(self, task: str, artifact=None):
        self._acquire(task)
        try:
            yield
        finally:
            self._release()

    def note(self, **fields) -> None:
        """The lock is an annotation: every write would change the etag the deploy guards with. Nothing noted."""

    def _acquire(self, task: str) -> None:
        owner = json.dumps(lock.owner(task), sort_keys=True)
        for _ in range(LOCK_TRIES):
            service = self._read()
            held = lock.parse(service.annotations.get(cr.LOCK, ""))
            if held:
                raise lock.LockHeld(held, self.stack.name)
            service.annotations[cr.LOCK] = owner
            try:
                self._update(service, "take the deploy lock", sole=False)
                self.owner = owner
                return
            except ConcurrentChange:
                continue  # someone wrote in between: read again (it may be their lock)
        raise DeployFailed("lock", f"the service kept changing while taking the lock ({LOCK_TRIES} tries)")

    def _release(self) -> None:
        if self.owner:
            self.break_lock(self.owner)
            self.owner = None

    def break_lock(self, expected: str) -> None:
        """Remove the lock if it still holds exactly `expected` (ours at the end of a task; `fab unlock`)."""
        self._annotate("remove the deploy lock", lambda a: a.pop(cr.LOCK, None) if a.get(cr.LOCK) == expected else None)

    def _annotate(self, what: str, change) -> None:
        """Read-modify-write of the service's annotations only, again on a concurrent change."""
        for _ in range(LOCK_TRIES):
            service = self._read()
            annotations = dict(service.annotations)
            change(annotations)
            if annotations == dict(service.annotations):
                return
            service.annotations.clear()
            service.annotations.update(annotations)
            try:
                self._update(service, what, sole=False)
                return
            except ConcurrentChange:
                continue
        raise GcpError(f"{what}: the service kept changing ({LOCK_TRIES} tries)")

    def _update(self, service, what: str, sole: bool = True):
        """Write `service` (its etag guards it); wait for the operation; remember the new service.

        The etag only guards the moment of the write. A write by someone else while the operation
        runs shows in the result as a generation past ours: with `sole` (traffic and revisions, not the
        annotation-only lock and history writes) that is a ConcurrentChange too, and the result is not
        taken as this run's own state."""
        operation = self.clients.call(what, self.clients.services.update_service, service=service)
        result = self.clients.wait(what, operation, UPDATE_TIMEOUT_S)
        if sole and result.generation > service.generation + 1:
            raise ConcurrentChange(f"{what}: the service changed since this run read it (generation "
                                   f"{service.generation} -> {result.generation}, one write of ours)")
        if self.state is not None:
            self.state.service = result
        return result

    # -- deploy verbs ---------------------------------------------------------------------------------
    def preflight(self, state: cr.CloudRunState, artifact: Artifact) -> list[str]:
        if not artifact.image:
            raise DeployFailed("preflight", "the artifact has no image: Cloud Run runs containers "
                                            "(shipshape:docker.dockerfile names the app's Dockerfile)")
        notes = [f"service {self.stack.app.name} in {self.clients.location}, etag {state.service.etag[:16]}",
                 "pending migrations: the migrate job applies them"]
        if state.first:
            notes.append(state.first)
        if state.stray:
            notes.append(f"traffic outside the two slots (an interrupted deploy?): {state.stray}; "
                         "this deploy's first update puts it back on the live revision")
        return notes

    def upload(self, artifact: Artifact, state, release: Release) -> str:
        """Push the image `fab build` made to the stack's registry, tagged with the release id."""
        self.override = _override_env(artifact)
        repository, _, tag = release.image.rpartition(":")
        ref = registry.push(f"{image_repo(self.stack.app.name)}:{artifact.id}", repository, tag,
                            getattr(self.clients.credentials, "token", None), log=info)
        return f"image {ref}"

    def prepare(self, release: Release, artifact: Artifact) -> str:
        return "nothing to prepare: the image is the release"

    def backup(self) -> str:
        return "Cloud SQL's automated backups and point-in-time recovery (shipshape:database) cover this deploy"

    def migrate(self, release: Release, state=None) -> list[str]:
        """Point the migrate job at the release's image, run it, wait for its execution to succeed."""
        if not self.stack.app.migrate:
            return ["no migrate command (shipshape:app.migrate)"]
        image = release.image
        jobs, job_name = self.clients.jobs, self.clients.job_name(f"{self.stack.app.name}-migrate")
        job = self.clients.call("read the migrate job", jobs.get_job, name=job_name)
        if job.template.template.containers[0].image != image:
            job.template.template.containers[0].image = image
            job = self.clients.wait("point the migrate job at the new image",
                                    self.clients.call("update the migrate job", jobs.update_job, job=job), UPDATE_TIMEOUT_S)
        operation = self.clients.call("run the migrate job", jobs.run_job, request={"name": job_name, "etag": job.etag})
        try:
            execution = self.clients.wait("the migrate job's execution", operation, JOB_TIMEOUT_S)
        except GcpError as error:
            raise DeployFailed("migrate", f"{error}{self._execution_log(operation)}") from None
        if execution.failed_count or not execution.succeeded_count:
            raise DeployFailed("migrate", f"execution {execution.name.rsplit('/', 1)[-1]} failed "
                                          f"(logs: {execution.log_uri or 'Cloud Logging'})")
        return [f"execution {execution.name.rsplit('/', 1)[-1]} succeeded"]

    def _execution_log(self, operation) -> str:
        try:
            uri = operation.metadata.log_uri
        except AttributeError:
            uri = ""
        return f" (logs: {uri})" if uri else ""

    def start(self, slot: Slot, restore: dict | None = None) -> None:
        """Create the slot's revision with no traffic and the candidate tag (unless it exists), then
        probe its readiness through the tag URL to canary.readiness_timeout."""
        state, revision = self.state, slot.release.dir
        self.candidate = {slot.name: revision}
        if revision not in state.revisions:
            self._create_revision(slot)
        elif not cr.is_ready(state.revisions[revision]):
            raise DeployFailed("start", f"{revision}: {cr.not_ready_reason(state.revisions[revision])}")
        else:
            return  # an existing, ready revision (a rollback): Cloud Run starts instances when traffic comes
        url = cr.tag_urls(state.service).get(cr.CANDIDATE_TAG)
        if not url:
            raise DeployFailed("start", f"{revision} is ready but the service shows no URL for tag {cr.CANDIDATE_TAG!r}")
        self._probe(url, self.stack.canary.readiness_timeout, "start")

    def _create_revision(self, slot: Slot) -> None:
        service, release = self.state.service, slot.release
        live = self.state.revision_of(self.state.slots.live)
        template = service.template
        template.revision = release.dir
        template.containers[0].image = release.image
        cr.with_release_env(template.containers[0], release.id, release.git_sha, self.override)
        template.annotations[cr.RELEASE] = release.id
        template.annotations[cr.GIT_SHA] = release.git_sha
        percents = {live: 100} if live else {release.dir: 100}
        service.traffic = cr.traffic(percents, {cr.CANDIDATE_TAG: release.dir})
        try:
            self._update(service, f"create revision {release.dir}")
        except ConcurrentChange as error:
            raise DeployFailed("start", f"{error}; nothing was changed: deploy again once it is settled") from None
        except GcpError as error:
            raise DeployFailed("start", f"{release.dir} did not become ready: {error} (its logs: `gcloud logging "
                                        f"read 'resource.labels.revision_name={release.dir}' --project "
                                        f"{self.clients.project}`); it serves no traffic") from None

    def _probe(self, url: str, timeout: float, step_name: str) -> None:
        path, deadline, last = self.stack.app.readiness_path, time.monotonic() + max(timeout, 1), ""
        try:
            headers = invoker_headers(self.clients.credentials, self.stack.gcp.public, url)
        except GcpError as error:
            raise DeployFailed(step_name, str(error)) from None
        while True:
            try:
                response = requests.get(url.rstrip("/") + path, timeout=5, headers=headers)
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}"
            except requests.RequestException as error:
                last = type(error).__name__
            if time.monotonic() >= deadline:
                raise DeployFailed(step_name, f"{url}{path} not ready after {timeout:g}s (last: {last})")
            time.sleep(0.5)

    def route_commands(self, weights: dict) -> list:
        """Nothing to send ahead of a start: the candidate's update writes the whole traffic list."""
        return []

    def route(self, weights: dict) -> None:
        """Traffic per slot, as one explicit list with the etag (the candidate keeps its tag)."""
        percents = {}
        for slot, percent in weights.items():
            revision = self.candidate.get(slot) or self.state.revision_of(slot)
            if revision and percent:
                percents[revision] = percents.get(revision, 0) + percent
        if sum(percents.values()) != 100:
            info(f"traffic stays as it is: no revision for {weights}")
            return
        service = self.state.service
        service.traffic = cr.traffic(percents, {cr.CANDIDATE_TAG: r for r in self.candidate.values()})
        try:
            self._update(service, f"move traffic to {percents}")
        except ConcurrentChange as error:
            raise DeployFailed("canary", f"{error}: someone changed the service during this deploy; "
                                         "their change is kept, this run stops") from None

    def canary_step(self, slot: Slot, live: str, percent: int, since: float) -> gate.Step:
        """One traffic update, then the gate (shipshape/gate.py) on both revisions' request and 5xx counts
        from Cloud Monitoring, read every POLL_S until it decides; while it wants more data, readiness probes
        go to the candidate's tag URL (Monitoring counts them as the revision's). Latency: the candidate's
        p95 above the bound while the live one's is not rolls back (Monitoring gives no per-request times)."""
        self.route({slot.name: percent, live: 100 - percent})
        canary, started, probes, timeline = self.stack.canary, time.monotonic(), 0, []
        policy, live_revision = gate.Policy.of(canary), self.state.revision_of(live)
        while True:
            time.sleep(POLL_S)
            self._unchanged("canary")
            now, elapsed = time.time(), time.monotonic() - started
            mine = revision_stats(self.clients, self.stack.app.name, slot.release.dir, since, now)
            theirs = revision_stats(self.clients, self.stack.app.name, live_revision, since, now)
            c, l = gate.Tally(mine.requests, mine.errors), gate.Tally(theirs.requests, theirs.errors)
            timeline.append((round(elapsed, 2), c.requests, c.errors, 0, l.requests, l.errors, 0))
            verdict = gate.judge(c, l, policy, elapsed)
            if mine.requests and mine.p95_ms > canary.max_latency_ms >= theirs.p95_ms:
                verdict = gate.Verdict("rollback", f"p95 latency {mine.p95_ms:.0f} ms > {canary.max_latency_ms} ms "
                                                   f"(live {theirs.p95_ms:.0f} ms)")
            if verdict.final or elapsed >= canary.step_limit:
                action = verdict.action if verdict.final else "undecided"
                return gate.Step(action, verdict.reason, c, l, elapsed, probes, tuple(timeline))
            if verdict.action == "more-data" and canary.probe_rate:
                probes += self._probe_candidate(max(1, int(canary.probe_rate * POLL_S)))

    def _probe_candidate(self, count: int) -> int:
        """GET readiness on the candidate's tag URL `count` times (a dead tag URL: the next read says so)."""
        url = cr.tag_urls(self.state.service).get(cr.CANDIDATE_TAG)
        if not url:
            return 0
        headers = invoker_headers(self.clients.credentials, self.stack.gcp.public, url)
        for _ in range(count):
            try:
                requests.get(url.rstrip("/") + self.stack.app.readiness_path, timeout=5, headers=headers)
            except requests.RequestException:
                pass  # Monitoring counts what reached the revision; a refused connection is not its answer
        return 1

    def _unchanged(self, step_name: str) -> None:
        """The service still carries the etag of this run's last write, or DeployFailed (nothing written)."""
        now = self._read()
        if now.etag != self.state.service.etag:
            raise DeployFailed(step_name, "the service changed since this run read it (etag "
                               f"{self.state.service.etag[:12]} -> {now.etag[:12]}): someone else acted on it; "
                               "their change is kept, this run stops")

    def stop(self, slot: str) -> None:
        """Undo of a start: the candidate loses its tag (it serves nothing; Cloud Run scales it to zero)."""
        revision = self.candidate.pop(slot, None)
        live = self.state.revision_of(self.state.slots.live)
        if revision and live and live != revision:
            self.state.service.traffic = cr.traffic({live: 100})
            self._update(self.state.service, f"untag {revision}")

    def promote(self, state: cr.CloudRunState, slot: Slot, entry: history.Entry) -> list[str]:
        """All traffic on the new revision, slots and history: ONE update; then retention."""
        slots = state.slots
        slots.live, slots.weights = slot.name, {slot.name: 100, other(slot.name): 0}
        slots.slots[slot.name] = self._slot_entry(slot)
        service = state.service
        service.traffic = cr.traffic({slot.release.dir: 100})
        service.annotations[cr.SLOTS] = slots.to_json()
        service.annotations[cr.HISTORY] = self._history_with(service.annotations, entry)
        try:
            self._update(service, f"promote {slot.release.dir}")
        except ConcurrentChange as error:
            raise DeployFailed("promote", f"{error}: someone changed the service; their change is kept") from None
        self.candidate = {}
        return self._prune(state, {e["revision"] for e in slots.slots.values() if e})

    def _slot_entry(self, slot: Slot) -> dict:
        return {"release": slot.release_id, "git_sha": slot.release.git_sha, "revision": slot.release.dir,
                "image": slot.release.image, "started": time.time()}

    def _history_with(self, annotations, entry: history.Entry) -> str:
        return cr.appended(annotations.get(cr.HISTORY, ""), history.to_json(entry, self.secrets))

    def _prune(self, state: cr.CloudRunState, keep: set) -> list[str]:
        """Delete fab's revisions beyond shipshape:retention.releases (never one in a slot, nor one
        `pulumi up` made)."""
        ours = [rid for rid, m in state.releases.items() if m["sha"]]
        doomed = rc.prune_plan(ours, self.stack.retention.releases,
                               {rid for rid in ours if state.releases[rid]["revision"] in keep})
        for rid in doomed:
            name = f"{self.name}/revisions/{state.releases[rid]['revision']}"
            try:
                self.clients.wait(f"delete {rid}", self.clients.call(
                    f"delete {rid}", self.clients.revisions.delete_revision, name=name), UPDATE_TIMEOUT_S)
            except GcpError as error:
                info(f"retention: {error}")
        return doomed

    def switch(self, state: cr.CloudRunState, slot: Slot, entry: history.Entry | None, warm: bool) -> None:
        """Rollback: all traffic to the slot's revision, slots and history in ONE update."""
        slots = state.slots
        if not (warm and slots.slots.get(slot.name)):
            slots.slots[slot.name] = self._slot_entry(slot)
        slots.live, slots.weights = slot.name, {slot.name: 100, other(slot.name): 0}
        service = state.service
        service.traffic = cr.traffic({slot.release.dir: 100})
        service.annotations[cr.SLOTS] = slots.to_json()
        if entry:
            service.annotations[cr.HISTORY] = self._history_with(service.annotations, entry)
        try:
            self._update(service, f"switch all traffic to {slot.release.dir}")
        except GcpError as error:
            raise DeployFailed(entry.kind if entry else "switch", str(error)) from None

    def retire(self, state, slot: str) -> None:
        raise NotSupported("Cloud Run replaces instances itself: there is no slot to retire")

    # -- audit -----------------------------------------------------------------------------------------
    def record(self, entry: history.Entry) -> None:
        self._annotate("record the history line", lambda a: a.__setitem__(cr.HISTORY, self._history_with(a, entry)))

    def notify(self, event: str, entry: history.Entry) -> None:
        notify.notify(self.stack, event, release=entry.release, git_sha=entry.git_sha, who=entry.who,
                      step=entry.step, reason=entry.reason)

    # -- operator views ----------------------------------------------------------------------------
    def history(self) -> list[history.Entry]:
        return self.read_state().history

    def status_lines(self, state: cr.CloudRunState) -> list[str]:
        served, tags = cr.serving(state.service), {}
        for target in state.service.traffic:
            if target.tag:
                tags[target.revision] = target.tag
        lines = [f"service {self.stack.app.name} ({state.service.uri}), etag {state.service.etag[:16]}"]
        for name, revision in sorted(state.revisions.items(), key=lambda kv: kv[1].create_time, reverse=True):
            slot = next((s for s, e in state.slots.slots.items() if e and e["revision"] == name), None)
            mark = "*" if slot and slot == state.slots.live else " "
            lines.append(f"{mark} {name:<48} traffic {served.get(name, 0):>3}%  "
                         f"{'ready' if cr.is_ready(revision) else 'NOT READY'}  "
                         f"release {state.release_of(name) or '-'}" + (f"  tag {tags[name]}" if name in tags else ""))
        lines.append(f"lock: {lock.describe(state.lock, self.stack.name) if state.lock else 'free'}")
        return lines


def _override_env(artifact: Artifact) -> dict:
    """The app's shipshape.env (KEY=value lines) from the artifact: on a host the release env file
    merges it; here it goes into the revision's env."""
    if not artifact.env_override:
        return {}
    with tarfile.open(artifact.path) as tar, tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / OVERRIDE_FILE
        path.write_bytes(tar.extractfile(OVERRIDE_FILE).read())
        return read_secrets_file(path)

