"""Cloud Run: the service as `fab` left it (read once through Google's clients; host stacks skip)."""
from __future__ import annotations

import pytest

from checks.cloudrun_facts import invoker_faults, scaling_faults, serving_faults, traffic_faults

ORDER = 2.5  # after access, before a host's processes
AREA = "Cloud Run service"
TIMEOUT = 5.0


def _judge(check, seen: str, faults: list[str]) -> None:
    check.detail(seen)
    assert not faults, "; ".join(faults)


def test_serving_revision_is_historys(cloud, check):
    """The revision serving is the one of the release the deploy history last recorded"""
    check.target(f"traffic and shipshape.dev/history of {cloud.state.service.name.rsplit('/', 1)[-1]}")
    _judge(check, *serving_faults(cloud.state))


def test_traffic_sums_to_100_on_ready_revisions(cloud, check):
    """Traffic sums to 100% and every revision receiving traffic is ready"""
    check.target("traffic_statuses")
    _judge(check, *traffic_faults(cloud.state.service, cloud.state.revisions))


def test_min_instances(cloud, stack, check):
    """Minimum instances are shipshape:gcp.min_instances (service, template, serving revisions)"""
    check.target(f"scaling.min_instance_count (expected {stack.gcp.min_instances})")
    _judge(check, *scaling_faults(cloud.state.service, cloud.state.revisions, stack.gcp.min_instances))


def test_invoker_matches_public(cloud, stack, check):
    """allUsers may invoke the service only if shipshape:gcp.public is true"""
    check.target(f"IAM policy (shipshape:gcp.public: {str(stack.gcp.public).lower()})")
    _judge(check, *invoker_faults(cloud.policy, stack.gcp.public))


def test_candidate_ready(cloud, http, stack, check):
    """During a deploy, the candidate revision answers readiness 200 through its tag URL"""
    from shipshape.targets import cloudrun_state as cr

    url = cr.tag_urls(cloud.state.service).get(cr.CANDIDATE_TAG)
    if not url:
        pytest.skip(f"no `{cr.CANDIDATE_TAG}` tag on the service: no deploy in progress")
    check.target(url + stack.app.readiness_path)
    response = http.get(url + stack.app.readiness_path, timeout=TIMEOUT, allow_redirects=False)
    assert response.status_code == 200, f"answered {response.status_code}: {response.text[:200]}"
    check.detail("200")
