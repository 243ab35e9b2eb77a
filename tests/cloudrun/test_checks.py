"""`pytest checks/ --stack` on a Cloud Run stack, against the fake: all green after a deploy, and each
Cloud Run check failing on the fault it guards against (made through Google's API, as an operator in
the console would make it), the others still passing. Every fault is undone in a `finally`.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from google.iam.v1 import policy_pb2

from shipshape.targets import cloudrun_state as cr
from tests.checks.support import run_checks
from tests.cloudrun.conftest import STACK

pytestmark = [pytest.mark.docker]

CLOUD = "test_cloudrun::"
HTTP = ("test_http::", "test_access::")
SERVING, TRAFFIC, SCALING, INVOKER, CANDIDATE = (CLOUD + name for name in (
    "test_serving_revision_is_historys", "test_traffic_sums_to_100_on_ready_revisions", "test_min_instances",
    "test_invoker_matches_public", "test_candidate_ready"))


@pytest.fixture(scope="module")
def deployed(cloudrun_stack, tmp_path_factory):
    """The stack after one `fab deploy`, and the checks' all-green run from there."""
    cloudrun_stack.fab("deploy")
    baseline = run_checks(tmp_path_factory.mktemp("baseline"), STACK, cloudrun_stack.root)
    return cloudrun_stack, baseline


def variant(stack, tmp_path: Path, **gcp) -> Path:
    """A project root like the stack's whose shipshape:gcp differs by `gcp` (the stack file says otherwise)."""
    root = tmp_path / "variant"
    root.mkdir()
    document = yaml.safe_load((stack.root / f"Pulumi.{STACK}.yaml").read_text())
    document["config"]["shipshape:gcp"].update(gcp)
    (root / f"Pulumi.{STACK}.yaml").write_text(yaml.safe_dump(document))
    (root / "Pulumi.yaml").write_text((stack.root / "Pulumi.yaml").read_text())
    return root


def set_traffic(stack, percents: dict, tags: dict | None = None) -> None:
    service = stack.service()
    service.traffic = cr.traffic(percents, tags)
    stack.services.update_service(service=service).result(timeout=120)


def set_invokers(stack, members: list[str]) -> None:
    policy = stack.services.get_iam_policy(request={"resource": stack.name})
    del policy.bindings[:]
    if members:
        policy.bindings.append(policy_pb2.Binding(role="roles/run.invoker", members=members))
    stack.services.set_iam_policy(request={"resource": stack.name, "policy": policy})


def others(stack) -> list[str]:
    """The service's revisions other than the one serving, newest first."""
    live = next(iter(stack.serving()))
    return [r for r in sorted(stack.revisions(), reverse=True) if r != live]


def test_all_green_after_a_deploy(deployed):
    stack, baseline = deployed
    assert not baseline.failing(), baseline.checklist
    assert {SERVING, TRAFFIC, SCALING, INVOKER} <= baseline.with_outcome("passed"), baseline.checklist
    assert CANDIDATE in baseline.with_outcome("skipped")              # no deploy in progress
    assert "test_http::test_health" in baseline.with_outcome("passed")  # through the service URL
    assert "test_app_host::" not in " ".join(baseline.with_outcome("passed"))  # no host to check
    assert stack.service().uri in baseline.checklist


def test_traffic_moved_by_hand_fails_the_serving_check(deployed, tmp_path):
    stack, baseline = deployed
    live = next(iter(stack.serving()))
    set_traffic(stack, {others(stack)[0]: 100})        # `gcloud run services update-traffic --to-revisions`
    try:
        run = run_checks(tmp_path, STACK, stack.root)
    finally:
        set_traffic(stack, {live: 100})
    run.assert_fails_only({SERVING}, ("test_http::test_version_is_serving_release",), baseline)
    assert "fab rollback --to RELEASE" in run.checklist


def test_a_crashed_serving_revision_fails_the_http_checks(deployed, tmp_path):
    stack, baseline = deployed
    live = next(iter(stack.serving()))
    assert stack.fake.kill_revision(live)
    try:
        run = run_checks(tmp_path, STACK, stack.root)
    finally:
        set_traffic(stack, {live: 100})                  # routing to it again starts it
    run.assert_fails_only({"test_http::test_health", "test_http::test_readiness"}, HTTP, baseline)


def test_min_instances_changed_outside_the_stack_file_fails(deployed, tmp_path):
    stack, baseline = deployed
    service = stack.service()
    template = service.template.scaling.min_instance_count
    service.template.scaling.min_instance_count = 1     # a console edit: a new revision, no traffic moved
    service.template.revision = ""
    stack.services.update_service(service=service).result(timeout=120)
    try:
        run = run_checks(tmp_path, STACK, stack.root)
    finally:
        service = stack.service()
        service.template.scaling.min_instance_count = template
        service.template.revision = ""
        stack.services.update_service(service=service).result(timeout=120)
    run.assert_fails_only({SCALING}, (), baseline)
    assert "template keeps 1 instances warm, shipshape:gcp.min_instances is 0" in run.checklist


def test_allusers_on_a_private_stack_fails_the_invoker_check(deployed, tmp_path):
    stack, baseline = deployed
    run = run_checks(tmp_path, STACK, variant(stack, tmp_path, public=False))
    run.assert_fails_only({INVOKER}, (), baseline)
    assert "allUsers may invoke the service but shipshape:gcp.public is false" in run.checklist


def test_a_private_stack_is_checked_with_an_identity_token(deployed, tmp_path):
    stack, baseline = deployed
    set_invokers(stack, [])                             # private: the URL answers 403 without a token
    try:
        assert stack.get("/healthz")[0] == 403
        run = run_checks(tmp_path, STACK, variant(stack, tmp_path, public=False))
    finally:
        set_invokers(stack, ["allUsers"])
    assert not run.failing(), run.checklist
    assert {"test_http::test_health", INVOKER} <= run.with_outcome("passed")


def test_a_public_stack_without_allusers_fails(deployed, tmp_path):
    stack, baseline = deployed
    set_invokers(stack, [])
    try:
        run = run_checks(tmp_path, STACK, stack.root)
    finally:
        set_invokers(stack, ["allUsers"])
    run.assert_fails_only({INVOKER, "test_http::test_health"}, HTTP, baseline)
    assert "users get 403" in run.checklist


def test_a_candidate_that_is_not_ready_fails_during_a_deploy(deployed, tmp_path):
    stack, baseline = deployed
    live, candidate = next(iter(stack.serving())), others(stack)[0]
    set_traffic(stack, {live: 100}, {cr.CANDIDATE_TAG: candidate})
    try:
        assert stack.fake.kill_revision(candidate)
        run = run_checks(tmp_path, STACK, stack.root)
    finally:
        set_traffic(stack, {live: 100})
    run.assert_fails_only({CANDIDATE}, (), baseline)


def test_the_stack_is_whole_after_the_faults(deployed, tmp_path):
    stack, _ = deployed
    run = run_checks(tmp_path, STACK, stack.root)
    assert not run.failing(), run.checklist
