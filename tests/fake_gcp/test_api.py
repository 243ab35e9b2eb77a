"""The Cloud Run fake (tests/support/fake_gcp) driven by the real google-cloud-run client (REST) with real
Application Default Credentials: each rule the real Admin API v2 enforces, refused or honoured here too.

Every test starts from a reset fake holding one service, `shop`, as `pulumi up` leaves it (one revision
serving 100 % via LATEST, plus the `shop-migrate` job), its container a tiny HTTP server on the base image.
"""
from __future__ import annotations

import time
import urllib.error
import urllib.request

import google.auth
import google.auth.exceptions
import google.auth.transport.requests
import pytest
import requests
from google.api_core import exceptions as api
from google.cloud import run_v2
from google.iam.v1 import policy_pb2

pytestmark = [pytest.mark.docker, pytest.mark.slow]

PARENT = "projects/shipshape-test/locations/europe-west1"
SHOP = f"{PARENT}/services/shop"
MIGRATE = f"{PARENT}/jobs/shop-migrate"
LATEST = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST
REVISION = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION
# "/" says which revision answered, "/env/NAME" echoes an env var, "/ready" is the startup probe's path.
SERVER = """
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = (os.environ.get(self.path[5:], "") if self.path.startswith("/env/")
                else "ready" if self.path == "/ready" else "hello from " + os.environ["K_REVISION"]).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"""


def get(url: str) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as response:
        return response.read().decode()


def target(percent: int, revision: str = "", tag: str = "") -> run_v2.TrafficTarget:
    return run_v2.TrafficTarget(type_=REVISION if revision else LATEST, revision=revision, percent=percent, tag=tag)


def short(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def error_status(error: api.GoogleAPICallError) -> str:
    return error.response.json()["error"]["status"]


@pytest.fixture(scope="module")
def image(docker_cloudrun, base_image_on) -> str:
    return base_image_on(docker_cloudrun)  # Debian bookworm with python3


@pytest.fixture
def fake(fake_gcp, image, tmp_path, monkeypatch):
    for key, value in fake_gcp.env(tmp_path).items():
        monkeypatch.setenv(key, value)
    fake_gcp.reset()
    fake_gcp.seed(service="shop", image=image, command=["python3", "-c", SERVER], env={"GREETING": "hi"},
                  migrate_command="sh -c 'echo migrating; exit 0'", public=True)
    return fake_gcp


@pytest.fixture
def services(fake) -> run_v2.ServicesClient:
    return run_v2.ServicesClient(transport="rest", client_options=fake.client_options)


@pytest.fixture
def jobs(fake) -> run_v2.JobsClient:
    return run_v2.JobsClient(transport="rest", client_options=fake.client_options)


def deploy(services, env_value: str, revision: str = "", traffic=None, command=None) -> run_v2.Service:
    """Change the template (a new revision) and, optionally, the traffic; return the operation's result."""
    service = services.get_service(name=SHOP)
    service.template.containers[0].env = [run_v2.EnvVar(name="GREETING", value=env_value)]
    service.template.revision = revision
    if command is not None:
        service.template.containers[0].command = command
    if traffic is not None:
        service.traffic = traffic
    return services.update_service(service=service).result(timeout=120)


def test_seeded_service_serves_its_one_revision_through_latest(fake, services):
    service = services.get_service(name=SHOP)
    assert [(s.type_, s.revision, s.percent) for s in service.traffic_statuses] == [
        (LATEST, short(service.latest_ready_revision), 100)]
    assert service.latest_created_revision == service.latest_ready_revision
    assert get(service.uri) == f"hello from {short(service.latest_ready_revision)}"
    assert get(service.uri + "/env/GREETING") == "hi"
    policy = services.get_iam_policy(request={"resource": SHOP})
    assert [(b.role, list(b.members)) for b in policy.bindings] == [("roles/run.invoker", ["allUsers"])]


def test_update_is_an_operation_whose_result_is_the_service(fake, services):
    before = services.get_service(name=SHOP)
    operation = services.update_service(service=before)  # the same template: no revision, still an LRO
    assert operation.operation.name.startswith(f"{PARENT}/operations/")
    after = deploy(services, "hello again")
    assert isinstance(after, run_v2.Service)
    assert after.generation == before.generation + 2 and after.etag != before.etag
    assert after.latest_ready_revision != before.latest_ready_revision
    assert after.observed_generation == after.generation and not after.reconciling
    assert get(after.uri) == f"hello from {short(after.latest_ready_revision)}"
    assert get(after.uri + "/env/GREETING") == "hello again"


def test_annotation_only_update_creates_no_revision(fake, services):
    revisions = run_v2.RevisionsClient(transport="rest", client_options=fake.client_options)
    before = services.get_service(name=SHOP)
    before.annotations["shipshape.dev/release"] = "r42"
    after = services.update_service(service=before).result(timeout=60)
    assert after.annotations["shipshape.dev/release"] == "r42"
    assert after.generation == before.generation + 1
    assert after.latest_created_revision == before.latest_created_revision
    assert len(list(revisions.list_revisions(parent=SHOP))) == 1


@pytest.mark.parametrize("traffic, message", [
    ([target(90)], "Traffic targets sum to 90, want 100"),
    ([target(60), target(60, "shop-x")], "Traffic targets sum to 120, want 100"),
    ([target(100), target(0, "shop-x", "canary"), target(0, "shop-y", "canary")], "Multiple definitions for tag"),
    ([target(101)], "percent: must be between 0 and 100"),
    ([run_v2.TrafficTarget(type_=REVISION, percent=100)], "Required for type REVISION"),
], ids=["sum-90", "sum-120", "duplicate-tag", "over-100", "no-revision-name"])
def test_bad_traffic_is_refused_and_nothing_changes(fake, services, traffic, message):
    before = services.get_service(name=SHOP)
    before.traffic = traffic
    with pytest.raises(api.BadRequest, match=message) as refused:
        services.update_service(service=before)
    assert error_status(refused.value) == "INVALID_ARGUMENT"
    assert services.get_service(name=SHOP).generation == before.generation


@pytest.mark.parametrize("where", ["annotations", "labels"])
def test_reserved_namespaces_are_refused(fake, services, where):
    service = services.get_service(name=SHOP)
    getattr(service, where)["run.googleapis.com/ingress"] = "all"
    with pytest.raises(api.BadRequest, match="run.googleapis.com"):
        services.update_service(service=service)


def test_tag_naming_a_missing_revision_is_refused_by_the_operation(fake, services):
    before = services.get_service(name=SHOP)
    before.traffic = [target(100), target(0, "shop-nope", "canary")]
    with pytest.raises(api.GoogleAPICallError, match="Revision 'shop-nope' does not exist or is deleted"):
        services.update_service(service=before).result(timeout=60)
    after = services.get_service(name=SHOP)
    assert list(after.traffic_statuses) == list(before.traffic_statuses)
    assert after.terminal_condition.state == run_v2.Condition.State.CONDITION_FAILED


def test_tag_may_name_the_revision_this_update_creates(fake, services):
    old = short(services.get_service(name=SHOP).latest_ready_revision)
    after = deploy(services, "canary", revision="shop-canary-1",
                   traffic=[target(100, old), target(0, "shop-canary-1", "canary")])
    statuses = {s.tag or s.revision: s for s in after.traffic_statuses}
    assert statuses[old].percent == 100 and statuses["canary"].revision == "shop-canary-1"
    assert get(statuses["canary"].uri) == "hello from shop-canary-1"
    assert get(after.uri) == f"hello from {old}"


def test_revision_name_reused_with_another_template_is_refused(fake, services):
    deploy(services, "one", revision="shop-release-1")
    service = services.get_service(name=SHOP)
    service.template.containers[0].env = [run_v2.EnvVar(name="GREETING", value="two")]
    with pytest.raises(api.Conflict, match="Revision named 'shop-release-1' with different configuration"):
        services.update_service(service=service)


def test_stale_etag_is_refused_and_the_state_is_unchanged(fake, services):
    stale = services.get_service(name=SHOP)
    deploy(services, "meanwhile")
    current = services.get_service(name=SHOP)
    stale.template.containers[0].env = [run_v2.EnvVar(name="GREETING", value="lost update")]
    with pytest.raises(api.Conflict) as refused:
        services.update_service(service=stale)
    assert error_status(refused.value) == "ABORTED"
    assert services.get_service(name=SHOP) == current


def test_revision_whose_container_exits_never_serves(fake, services):
    before = services.get_service(name=SHOP)
    with pytest.raises(api.FailedPrecondition, match=r"is not ready and cannot serve traffic\. The user-provided "
                       r"container failed to start and listen on the port defined provided by the PORT=8080"):
        deploy(services, "broken", command=["sh", "-c", "echo boom; exit 3"])
    after = services.get_service(name=SHOP)
    assert after.latest_ready_revision == before.latest_ready_revision
    assert list(after.traffic_statuses) == list(before.traffic_statuses)
    assert after.latest_created_revision != before.latest_created_revision
    failed = run_v2.RevisionsClient(transport="rest", client_options=fake.client_options).get_revision(
        name=after.latest_created_revision)
    ready = next(c for c in failed.conditions if c.type_ == "Ready")
    assert ready.state == run_v2.Condition.State.CONDITION_FAILED and "PORT=8080" in ready.message
    assert "boom" in fake.revision_log(failed.name)
    assert get(after.uri) == f"hello from {short(before.latest_ready_revision)}"


def test_secret_env_resolves_and_a_missing_secret_fails_the_revision(fake, services):
    fake.set_secrets(**{"shop-api-key": "s3cret"})
    service = services.get_service(name=SHOP)
    secret = run_v2.EnvVar(name="API_KEY", value_source=run_v2.EnvVarSource(
        secret_key_ref=run_v2.SecretKeySelector(secret="shop-api-key", version="latest")))
    service.template.containers[0].env.append(secret)
    after = services.update_service(service=service).result(timeout=60)
    assert get(after.uri + "/env/API_KEY") == "s3cret"
    after.template.containers[0].env[-1].value_source.secret_key_ref.secret = "shop-missing"
    with pytest.raises(api.FailedPrecondition, match="secrets/shop-missing/versions/latest was not found"):
        services.update_service(service=after).result(timeout=60)


def test_revision_with_traffic_cannot_be_deleted(fake, services):
    revisions = run_v2.RevisionsClient(transport="rest", client_options=fake.client_options)
    serving = services.get_service(name=SHOP).latest_ready_revision
    with pytest.raises(api.BadRequest) as refused:
        revisions.delete_revision(name=serving)
    assert error_status(refused.value) == "FAILED_PRECONDITION"


def test_idle_revision_scales_to_zero_and_starts_again_when_routed_to(fake, services):
    old = short(services.get_service(name=SHOP).latest_ready_revision)
    deploy(services, "new")
    deadline = time.monotonic() + 30
    while fake.state()["services"][SHOP]["revisions"][old]["container"] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert fake.state()["services"][SHOP]["revisions"][old]["container"] is None
    service = services.get_service(name=SHOP)
    service.traffic = [target(100, old)]
    rolled_back = services.update_service(service=service).result(timeout=60)
    assert get(rolled_back.uri) == f"hello from {old}"


@pytest.mark.parametrize("script, succeeded", [("echo migrated; exit 0", True), ("echo failed; exit 3", False)],
                         ids=["exit-0", "exit-3"])
def test_job_run_completes_with_the_container_and_its_exit_code(fake, jobs, script, succeeded):
    job = jobs.get_job(name=MIGRATE)
    job.template.template.containers[0].command = ["sh", "-c", script]
    jobs.update_job(job=job).result(timeout=60)
    operation = jobs.run_job(name=MIGRATE)
    if succeeded:
        execution = operation.result(timeout=120)
    else:
        with pytest.raises(api.FailedPrecondition, match="The container exited with an error"):
            operation.result(timeout=120)
        execution = operation.metadata  # the Execution, as the operation last reported it
    done = run_v2.ExecutionsClient(transport="rest", client_options=fake.client_options).get_execution(
        name=execution.name)
    assert (done.succeeded_count, done.failed_count) == ((1, 0) if succeeded else (0, 1))
    assert done.completion_time and done.log_uri
    [logged] = fake.job_logs(execution=done.name)
    assert logged["tasks"][0]["exitCode"] == (0 if succeeded else 3)
    assert logged["tasks"][0]["output"].strip() == script.split(";")[0].removeprefix("echo ")


def test_job_update_with_a_stale_etag_is_refused(fake, jobs):
    stale = jobs.get_job(name=MIGRATE)
    jobs.update_job(job=jobs.get_job(name=MIGRATE)).result(timeout=60)
    with pytest.raises(api.Conflict):
        jobs.update_job(job=stale)


def test_iam_policy_is_read_modify_write_guarded_by_its_etag(fake, services):
    policy = services.get_iam_policy(request={"resource": SHOP})
    del policy.bindings[:]
    updated = services.set_iam_policy(request={"resource": SHOP, "policy": policy})
    assert list(updated.bindings) == [] and updated.etag != policy.etag
    with pytest.raises(api.Conflict, match="concurrent policy changes"):
        services.set_iam_policy(request={"resource": SHOP, "policy": policy})  # the etag it was read with


def test_a_service_without_allusers_answers_only_identity_tokens(fake, services):
    service = services.get_service(name=SHOP)
    policy = services.get_iam_policy(request={"resource": SHOP})
    del policy.bindings[:]
    services.set_iam_policy(request={"resource": SHOP, "policy": policy})
    with pytest.raises(urllib.error.HTTPError) as refused:
        get(service.uri)
    assert refused.value.code == 403
    credentials, _ = google.auth.default()
    credentials.refresh(google.auth.transport.requests.Request())  # user credentials carry an id_token
    answer = requests.get(service.uri, headers={"Authorization": f"Bearer {credentials.id_token}"}, timeout=10)
    assert answer.status_code == 200 and answer.text.startswith("hello from")
    assert requests.get(service.uri, headers={"Authorization": f"Bearer {credentials.token}"},
                        timeout=10).status_code == 403   # an access token is not an identity token
    policy = services.get_iam_policy(request={"resource": SHOP})
    policy.bindings.append(policy_pb2.Binding(role="roles/run.invoker", members=["allUsers"]))
    services.set_iam_policy(request={"resource": SHOP, "policy": policy})
    assert get(service.uri).startswith("hello from")


def test_killed_revision_fails_requests_until_routed_to_again(fake, services):
    service = services.get_service(name=SHOP)
    assert fake.kill_revision(short(service.latest_ready_revision))
    with pytest.raises(urllib.error.HTTPError) as failed:
        get(service.uri)
    assert failed.value.code == 503
    services.update_service(service=service).result(timeout=60)  # routing again starts it
    assert get(service.uri) == f"hello from {short(service.latest_ready_revision)}"


def test_bad_refresh_token_is_a_refresh_error(fake, tmp_path, monkeypatch):
    for key, value in fake.env(tmp_path, valid=False).items():
        monkeypatch.setenv(key, value)
    client = run_v2.ServicesClient(transport="rest", client_options=fake.client_options)
    with pytest.raises(google.auth.exceptions.RefreshError, match="invalid_grant"):
        client.get_service(name=SHOP)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer ya29.not-issued-here"}], ids=["none", "forged"])
def test_request_without_an_issued_token_is_unauthenticated(fake, headers):
    # Raw HTTP: the client's AuthorizedSession would answer a 401 by refreshing its credentials first.
    response = requests.get(f"{fake.run_endpoint}/v2/{SHOP}", headers=headers, timeout=10)
    error = api.from_http_response(response)
    assert isinstance(error, api.Unauthorized) and error_status(error) == "UNAUTHENTICATED"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
