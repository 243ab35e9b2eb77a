"""Cloud Run fixtures: the service, its revisions and its invoker policy, read once through Google's clients."""
from __future__ import annotations

from dataclasses import dataclass

import pytest


@dataclass
class CloudRunService:
    state: object        # shipshape.targets.cloudrun_state.CloudRunState: service, revisions, slots, history, lock
    policy: object       # google.iam.v1 Policy of the service
    credentials: object  # the Application Default Credentials the run read them with


@pytest.fixture(scope="session")
def cloud(stack) -> CloudRunService:
    """The Cloud Run service as `fab` sees it; host stacks skip, a Google error fails every check using it."""
    if not stack.is_cloud:
        pytest.skip(f"stack {stack.name} runs on a host: there is no Cloud Run service to check")
    # Imported here: Google's clients cost ~0.5 s that a host stack's checks would pay for nothing.
    from shipshape.gcp import Clients, GcpError
    from shipshape.targets.cloudrun import CloudRunTarget

    try:
        clients = Clients.connect(stack.gcp)
        target = CloudRunTarget(stack, clients)
        state = target.read_state()
        policy = clients.call("read the service's IAM policy", clients.services.get_iam_policy,
                              request={"resource": target.name})
    except GcpError as error:
        pytest.fail(str(error), pytrace=False)
    return CloudRunService(state, policy, clients.credentials)


@pytest.fixture(scope="session")
def invoker(stack, request) -> dict:
    """Headers every request to the site carries: a private Cloud Run service's identity token, else none."""
    if not stack.is_cloud or stack.gcp.public:
        return {}
    from shipshape.gcp import GcpError, invoker_headers

    service = request.getfixturevalue("cloud")
    try:
        return invoker_headers(service.credentials, False, service.state.service.uri)
    except GcpError as error:
        pytest.fail(str(error), pytrace=False)
