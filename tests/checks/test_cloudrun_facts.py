"""Pure: what the Cloud Run checks judge (checks/cloudrun_facts.py), on services built by hand.

Each fact is shown passing on a service as `fab` leaves it and failing on the fault it guards against,
including faults the fake cannot produce because the API refuses them (statuses not summing to 100).
The same checks against the fake, end to end: tests/cloudrun/test_checks.py.
"""
from __future__ import annotations

import json

import pytest
from google.iam.v1 import policy_pb2

from checks.cloudrun_facts import invoker_faults, scaling_faults, serving_faults, traffic_faults
from shipshape import history
from shipshape.targets import cloudrun_state as cr
from tests.cloudrun.test_state import revision, service, slots

LOCK = json.dumps({"who": "ann@laptop", "pid": 7, "task": "deploy", "started": 5})


def state(statuses, live="b", entries=(("r2", "success"),), lock=None, extra=()) -> cr.CloudRunState:
    annotations = {cr.SLOTS: slots(live, a=("r1", "sample-r1"), b=("r2", "sample-r2")),
                   cr.HISTORY: "\n".join(history.to_json(history.Entry(rel, "sha", "me@here", 1.0, 2.0, outcome))
                                         for rel, outcome in entries)}
    if lock:
        annotations[cr.LOCK] = lock
    revisions = [revision("sample-r1", release="r1"), revision("sample-r2", release="r2"),
                 revision("sample-r3", release="r3"), *extra]
    return cr.CloudRunState.read(service([(r, p, t, "") for r, p, t in statuses], annotations), revisions)


def test_serving_the_historys_last_release_passes():
    seen, faults = serving_faults(state([("sample-r2", 100, "")]))
    assert faults == [] and "sample-r2 100% (release r2)" in seen and "history: r2" in seen


def test_a_failed_or_rolled_back_deploy_after_it_does_not_move_what_should_serve():
    entries = (("r2", "success"), ("r3", "rolled_back"), ("r4", "failed"))
    assert serving_faults(state([("sample-r2", 100, "")], entries=entries))[1] == []


@pytest.mark.parametrize("statuses, live, says", [
    ([("sample-r1", 100, "")], "b", "the history says r2 (sample-r2) serves, but it has no traffic"),
    ([("sample-r2", 90, ""), ("sample-r1", 10, "")], "b", "traffic goes outside fab's record: sample-r1 10%"),
    ([("sample-r2", 100, "")], "a", "the slots annotation names sample-r1 live, the history sample-r2"),
], ids=["traffic moved by hand", "split by hand", "slots edited"])
def test_traffic_or_slots_out_of_step_with_the_history_fail(statuses, live, says):
    _, faults = serving_faults(state(statuses, live=live))
    assert says in faults and "fab rollback --to RELEASE" in faults[-1]


def test_a_canary_split_is_expected_while_a_deploy_holds_the_lock():
    seen, faults = serving_faults(state([("sample-r2", 90, ""), ("sample-r3", 10, "candidate")], lock=LOCK))
    assert faults == [] and "a deploy holds the lock (deploy)" in seen


def test_a_history_release_whose_revision_is_gone_fails():
    _, faults = serving_faults(state([("sample-r2", 100, "")], entries=(("r9", "success"),)))
    assert "the history's last release r9 (deploy) has no revision on the service" in faults[0]


def test_before_any_fab_release_what_pulumi_made_may_serve():
    fresh = cr.CloudRunState.read(service([("", 100, "", "")], latest="sample-00001-abc"),
                                  [revision("sample-00001-abc")])
    seen, faults = serving_faults(fresh)
    assert faults == [] and "no fab release recorded yet" in seen
    nothing = cr.CloudRunState.read(service([("", 100, "", "")]), [revision("sample-00001-abc", ready=False)])
    assert serving_faults(nothing)[1] == ["no revision serves"]


@pytest.mark.parametrize("statuses, says", [
    ([("sample-r2", 100, "")], None),
    ([("sample-r2", 90, ""), ("sample-r3", 0, "candidate")], "sum to 90%"),
    ([("sample-r2", 60, ""), ("sample-r1", 60, "")], "sum to 120%"),
    ([("sample-r2", 50, ""), ("sample-bad", 50, "")], "sample-bad receives 50% but is not ready: exited 1"),
    ([("sample-r2", 50, ""), ("sample-gone", 50, "")], "sample-gone receives 50% but does not exist"),
])
def test_traffic_sums_to_100_on_ready_revisions(statuses, says):
    read = state(statuses, extra=[revision("sample-bad", ready=False)])
    seen, faults = traffic_faults(read.service, read.revisions)
    assert (faults == []) if says is None else any(says in f for f in faults), faults
    assert "sum" in seen


def scaled(template: int, serving: int, service_level: int = 0):
    read = state([("sample-r2", 100, "")])
    read.service.template.scaling.min_instance_count = template
    read.service.scaling.min_instance_count = service_level
    read.revisions["sample-r2"].scaling.min_instance_count = serving
    return read.service, read.revisions


@pytest.mark.parametrize("template, serving, service_level, wrong", [
    (1, 1, 0, []), (1, 1, 1, []),
    (0, 1, 0, ["template"]), (1, 0, 0, ["sample-r2"]), (1, 1, 3, ["service"]),
])
def test_min_instances_everywhere_they_are_set(template, serving, service_level, wrong):
    seen, faults = scaling_faults(*scaled(template, serving, service_level), expected=1)
    assert [f.split(" keeps")[0] for f in faults[:-1]] == wrong
    assert f"template {template}" in seen


def policy(*members: str) -> policy_pb2.Policy:
    return policy_pb2.Policy(bindings=[policy_pb2.Binding(role="roles/run.invoker", members=list(members)),
                                       policy_pb2.Binding(role="roles/run.admin", members=["allUsers"])])


@pytest.mark.parametrize("members, public, says", [
    (["serviceAccount:ci@p.iam.gserviceaccount.com"], False, None),
    (["allUsers"], True, None),
    (["allUsers"], False, "allUsers may invoke the service but shipshape:gcp.public is false"),
    (["allAuthenticatedUsers"], False, "allAuthenticatedUsers may invoke"),
    ([], True, "allUsers may not invoke the service: users get 403"),
])
def test_invoker_matches_public(members, public, says):
    seen, faults = invoker_faults(policy(*members), public)
    assert (faults == []) if says is None else says in faults[0]
    assert seen == "roles/run.invoker: " + (", ".join(members) or "nobody")
