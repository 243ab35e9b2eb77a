"""Pure tests of what `fab` reads from and writes to a Cloud Run service (no API, no fake)."""
from __future__ import annotations

import dataclasses
import json

import pytest
from google.api_core import exceptions as api
from google.cloud import monitoring_v3, run_v2

from shipshape import history
from shipshape.gcp import ConcurrentChange, GcpError, explain
from shipshape.targets import cloudrun_metrics as metrics
from shipshape.targets import cloudrun_state as cr

READY = run_v2.Condition(type_="Ready", state=run_v2.Condition.State.CONDITION_SUCCEEDED)
FAILED = run_v2.Condition(type_="Ready", state=run_v2.Condition.State.CONDITION_FAILED, message="exited 1")
SERVICE = "projects/p/locations/europe-west1/services/sample"


def revision(name: str, ready=True, release: str | None = None, sha="") -> run_v2.Revision:
    annotations = {cr.RELEASE: release, cr.GIT_SHA: sha} if release else {}
    return run_v2.Revision(name=f"{SERVICE}/revisions/{name}", conditions=[READY if ready else FAILED],
                           annotations=annotations, containers=[run_v2.Container(image=f"img:{name}")])


def service(statuses: list[tuple], annotations: dict | None = None, latest="") -> run_v2.Service:
    return run_v2.Service(name=SERVICE, etag="e1", annotations=annotations or {}, latest_ready_revision=latest,
                          traffic_statuses=[run_v2.TrafficTargetStatus(type_=cr.BY_REVISION if r else cr.LATEST,
                                                                       revision=r, percent=p, tag=t, uri=u)
                                            for r, p, t, u in statuses])


def slots(live: str, **revisions: tuple[str, str]) -> str:
    return json.dumps({"live": live, "weights": {}, "slots": {
        s: {"release": rel, "git_sha": "abc", "revision": rev} for s, (rel, rev) in revisions.items()}})


@pytest.mark.parametrize("percents, tags, expected", [
    ({"r1": 100}, {}, [("r1", 100, "")]),
    ({"r1": 100}, {"candidate": "r2"}, [("r1", 100, ""), ("r2", 0, "candidate")]),
    ({"r1": 90, "r2": 10}, {"candidate": "r2"}, [("r1", 90, ""), ("r2", 10, "candidate")]),
    ({"r1": 0, "r2": 100}, {}, [("r2", 100, "")]),
])
def test_traffic_is_an_explicit_list_by_revision(percents, tags, expected):
    listed = cr.traffic(percents, tags)
    assert [(t.revision, t.percent, t.tag) for t in listed] == expected
    assert all(t.type_ == cr.BY_REVISION for t in listed)


def test_traffic_that_does_not_sum_to_100_is_refused_before_any_call():
    with pytest.raises(ValueError, match="does not sum to 100"):
        cr.traffic({"r1": 90})


def test_revision_names_follow_cloud_runs_rule():
    assert cr.revision_name("Sample", "20261121120000-0123456789ab") == "sample-20261121120000-0123456789ab"
    with pytest.raises(ValueError, match="over 63"):
        cr.revision_name("a" * 40, "20261121120000-0123456789ab")


def test_a_service_pulumi_made_is_adopted_as_the_live_slot_of_a_first_release():
    state = cr.CloudRunState.read(service([("", 100, "", "")], latest="sample-00001-abc"),
                                  [revision("sample-00001-abc")])
    assert state.slots.live == "a" and state.revision_of("a") == "sample-00001-abc"
    assert "made by `pulumi up`" in state.first and state.weights == {"a": 100, "b": 0}
    assert state.processes["a"].online


def test_a_service_with_nothing_ready_is_a_first_deploy_said_so():
    state = cr.CloudRunState.read(service([("", 100, "", "")], latest=""), [revision("sample-00001-abc", ready=False)])
    assert state.slots.live is None and "no revision serves yet" in state.first


def test_slots_releases_weights_and_stray_traffic_from_annotations_and_revisions():
    entry = history.Entry("r2", "bbb", "me@here", 1.0, 2.0, "success")
    annotations = {cr.SLOTS: slots("b", a=("r1", "sample-r1"), b=("r2", "sample-r2")),
                   cr.HISTORY: history.to_json(entry),
                   cr.LOCK: json.dumps({"who": "ann@laptop", "pid": 7, "task": "deploy", "started": 5})}
    state = cr.CloudRunState.read(
        service([("sample-r2", 90, "", ""), ("sample-r3", 10, "candidate", "http://tag")], annotations),
        [revision("sample-r1", release="r1", sha="aaa"), revision("sample-r2", release="r2", sha="bbb"),
         revision("sample-r3", release="r3", sha="ccc", ready=False)])
    assert state.first is None and state.slots.live == "b"
    assert state.weights == {"a": 0, "b": 90} and state.stray == {"sample-r3": 10}
    assert state.releases["r3"] == {"sha": "ccc", "revision": "sample-r3", "image": "img:sample-r3", "ready": False}
    assert state.lock.who == "ann@laptop" and state.history == [entry]
    assert cr.tag_urls(state.service) == {"candidate": "http://tag"}


def test_history_keeps_the_newest_lines_only():
    lines = [f'{{"n": {i}}}' for i in range(cr.HISTORY_KEEP + 5)]
    kept = cr.appended("\n".join(lines[:-1]) + "\n\n", lines[-1]).splitlines()
    assert len(kept) == cr.HISTORY_KEEP and kept[-1] == lines[-1] and kept[0] == lines[5]


def test_the_gate_reads_one_revision_with_aligned_periods_of_at_least_60s():
    count = metrics.request("p", metrics.COUNT, "sample", "sample-r2", 1000.0, 1005.0)
    assert count["name"] == "projects/p"
    assert 'resource.labels.revision_name = "sample-r2"' in count["filter"]
    assert count["aggregation"].alignment_period.seconds == 60
    assert list(count["aggregation"].group_by_fields) == ["metric.labels.response_code_class"]
    latency = metrics.request("p", metrics.LATENCY, "sample", "sample-r2", 1000.0, 1300.0)
    assert latency["aggregation"].per_series_aligner == metrics.Aligner.ALIGN_PERCENTILE_95
    assert latency["aggregation"].alignment_period.seconds == 300


def test_stats_sum_classes_and_take_the_highest_p95():
    def series(code_class=None, ints=(), doubles=()):
        points = [monitoring_v3.Point(value=monitoring_v3.TypedValue(int64_value=v)) for v in ints]
        points += [monitoring_v3.Point(value=monitoring_v3.TypedValue(double_value=v)) for v in doubles]
        return monitoring_v3.TimeSeries(metric={"labels": {"response_code_class": code_class}} if code_class else {},
                                        points=points)
    stats = metrics.stats_from([series("2xx", [30, 6]), series("5xx", [4]), series("4xx", [2])],
                               [series(doubles=[120.0]), series(doubles=[310.5])], now=9.0)
    assert (stats.requests, stats.errors, stats.p95_ms) == (42, 4, 310.5)
    assert stats.error_rate == pytest.approx(4 / 42)


@pytest.mark.parametrize("error, kind, says", [
    (api.Aborted("etag mismatch"), ConcurrentChange, "changed since this run read it"),
    (api.Conflict("the etag in the request does not match"), ConcurrentChange, "changed since this run read it"),
    (api.Conflict("revision named x already exists"), GcpError, "Conflict"),
    (api.Unauthorized("bad token"), GcpError, "gcloud auth application-default login"),
    (api.PermissionDenied("no"), GcpError, "roles/run.developer"),
    (api.NotFound("services/sample"), GcpError, "pulumi up"),
])
def test_api_failures_become_one_line_saying_what_to_do(error, kind, says):
    explained = explain("move traffic", error)
    assert type(explained) is kind and says in str(explained) and "\n" not in str(explained)


def test_release_env_goes_first_where_pulumi_ignores_it():
    container = run_v2.Container(env=[run_v2.EnvVar(name="DATABASE_URL", value="x"),
                                      run_v2.EnvVar(name="RELEASE_ID", value="pulumi-up")])
    cr.with_release_env(container, "20261121-abc", "abc123")
    assert [(e.name, e.value) for e in container.env] == [
        ("RELEASE_ID", "20261121-abc"), ("GIT_SHA", "abc123"), ("DATABASE_URL", "x")]


class _Clients:
    """The Google call boundary only: `update_service` answers with the service as it ends up."""

    def __init__(self, ends_at_generation: int):
        self.ends_at = ends_at_generation

    def call(self, what, method, *args, **kwargs):
        return method(*args, **kwargs)

    def wait(self, what, operation, timeout):
        return operation

    @property
    def services(self):
        return self

    def update_service(self, service):
        return run_v2.Service(name=service.name, generation=self.ends_at, etag="later")


@pytest.mark.parametrize("ends_at, sole, concurrent", [(6, True, False), (7, True, True), (7, False, False)])
def test_a_write_by_someone_else_during_our_operation_is_a_concurrent_change(ends_at, sole, concurrent):
    from shipshape.targets.cloudrun import CloudRunTarget

    target = CloudRunTarget(stack=None, clients=_Clients(ends_at))
    ours = run_v2.Service(name=SERVICE, generation=5, etag="e5")
    if concurrent:
        with pytest.raises(ConcurrentChange, match="generation 5 -> 7"):
            target._update(ours, "move traffic", sole=sole)
    else:
        assert target._update(ours, "move traffic", sole=sole).generation == ends_at


def test_history_keeps_reports_on_the_newest_lines_only():
    from tests.report.samples import SUCCESS

    line = history.to_json(SUCCESS())
    text = ""
    for _ in range(cr.HISTORY_KEEP + 3):
        text = cr.appended(text, line)
    entries = history.parse(text)
    assert len(entries) == cr.HISTORY_KEEP
    assert [e.report is not None for e in entries] == [False] * (cr.HISTORY_KEEP - cr.REPORTS_KEEP) + [True] * cr.REPORTS_KEEP
    assert entries[0] == dataclasses.replace(SUCCESS(), report=None) and entries[-1] == SUCCESS()
    assert len(text.encode()) < 64 * 1024, len(text.encode())  # of the 256 KB all annotations may hold
