"""The Cloud Run Admin API v2 fake: HTTP server, state, and the rules the real API enforces.

Wire format: exactly what google-cloud-run 0.16.2's REST transport speaks (services/*/transports/
rest_base.py): proto3 JSON, camelCase keys, parsed and rendered with google.protobuf.json_format and
the library's own message classes (requests carry enums as integers, responses carry names; both parse).
Unknown request fields are refused, as by the real API ("Invalid JSON payload received").

What is enforced, and where (sync = the HTTP call fails; operation = the LRO ends with an error):
    sync 400 INVALID_ARGUMENT   traffic percents outside 0..100 or not summing to 100; duplicate tags;
                                a LATEST target naming a revision; a REVISION target naming none;
                                template.revision not "<service>-..." (<= 63, lowercase, digits, '-');
                                reserved env names (PORT, K_SERVICE, K_REVISION, K_CONFIGURATION);
                                reserved label/annotation namespaces on new keys
    sync 409 ABORTED            a non-empty etag that is not the current one (AIP-154; state unchanged)
    sync 409 ALREADY_EXISTS     template.revision names an existing revision with another template
                                ("Revision named 'X' with different configuration already exists.")
    sync 400 FAILED_PRECONDITION deleting a revision that has traffic, a tag, or is the latest one
    operation 9 FAILED_PRECONDITION the new revision does not start ("Revision 'X' is not ready and
                                cannot serve traffic. The user-provided container failed to start and
                                listen on the port defined provided by the PORT=8080 ..."); a missing
                                secret; an image that cannot be pulled. The revision's Ready condition
                                is false with the message; latest_created_revision is it;
                                latest_ready_revision, traffic_statuses, observed_generation unchanged.
    operation 13 INTERNAL       a traffic target naming a revision that does not exist ("Revision 'X'
                                does not exist or is deleted. Update all traffic to route to currently
                                available revisions.": code and text as reported from the real API)

Authentication: every /v2/ call needs "Authorization: Bearer <a token /token issued>", else 401
UNAUTHENTICATED (Google's message). POST /token is the refresh-token grant: the one refresh token the
fake was started with gets {access_token, expires_in: 3600, token_type: Bearer, id_token}; anything
else 400 {"error": "invalid_grant", "error_description": "Bad Request"}, which google-auth raises as
RefreshError. google-auth 2.62 sends authorized_user refreshes to https://oauth2.googleapis.com/token
whatever the ADC file says, so the server is also an HTTPS proxy (CONNECT) for that host only, with a
certificate from a throwaway CA (ca_file): HTTPS_PROXY + REQUESTS_CA_BUNDLE route the real flow here.

IAM (getIamPolicy/setIamPolicy on services and jobs): the policy as set; a policy etag that is not the
current one is refused 409 ABORTED ("There were concurrent policy changes...", IAM's wording). A service
is private until roles/run.invoker holds allUsers: its URLs then answer 403 unless the request carries
"Authorization: Bearer <an id_token /token issued>" (the fake's one user is taken to be an invoker).

Control, no auth, tests only: POST /_fake/reset, POST /_fake/seed {service, job, invokers},
GET /_fake/state, GET /_fake/logs?job=|execution=|revision=, POST /_fake/secrets {id: value|null},
POST /_fake/kill {revision} (SIGKILL its container: a crash; routing to it again restarts it).

Choices where the real behaviour was not documented (checked in docs/issues, else assumed):
    - UpdateService without update_mask replaces every input field (PUT-like); with update_mask only the
      masked paths change. Output-only fields in a request are ignored.
    - A template equal to the current one creates no revision (annotation/label/traffic-only updates).
    - Traffic is resolved when the operation runs: LATEST means the latest *ready* revision, so a new
      revision that fails never serves. A LATEST status carries the resolved revision name (knative's
      status.traffic does; v2 docs are silent).
    - RunJob: the operation is done when the execution finishes (airflow's Cloud Run trigger waits on
      operation.done for this); metadata is the Execution throughout, response on success, and a failed
      execution ends it with code 9 "Task <execution>-task0 failed with message: The container exited
      with an error." (gcloud's wording; the code is assumed). Tasks run one after another.
    - Revision.service and Execution.job are short names; latest_*_revision and the execution reference
      are full resource names.
    - Executions' output is kept by the fake: log_uri points at /_fake/logs (Cloud Logging's stand-in).
    - Secret Manager is a dict: one value per secret id (projects/*/secrets/ prefix optional), any
      version. Secret volumes become read-only bind mounts of files holding the values.
    - Only containers[0] runs; its startup probe (HTTP path, else TCP) gates readiness within its budget
      (initial delay + period x failure threshold; none: TCP, 240 s). Liveness probes, scaling limits,
      concurrency, CPU/memory and VPC settings are kept as sent and not acted on.
    - A revision with neither traffic nor a tag is scaled to zero (its container stopped) a few seconds
      after an operation; routing to it again starts it before the operation completes.
"""
from __future__ import annotations

import base64
import json
import re
import secrets
import shutil
import ssl
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from google.cloud import run_v2
from google.iam.v1 import iam_policy_pb2, policy_pb2
from google.longrunning import operations_pb2
from google.protobuf import field_mask_pb2, json_format, timestamp_pb2
from google.rpc import code_pb2, status_pb2

from tests.support.fake_gcp import containers
from tests.support.tls import TestCA

ServicePb, RevisionPb, JobPb, ExecutionPb = (t.pb() for t in (run_v2.Service, run_v2.Revision, run_v2.Job,
                                                              run_v2.Execution))
TemplatePb, TargetPb, TargetStatusPb = (t.pb() for t in (run_v2.RevisionTemplate, run_v2.TrafficTarget,
                                                         run_v2.TrafficTargetStatus))
ConditionPb, RunJobRequestPb = run_v2.Condition.pb(), run_v2.RunJobRequest.pb()
LATEST = int(run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST)
REVISION = int(run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION)
State = run_v2.Condition.State
HEALTH_CHECK_ERROR = int(run_v2.Condition.RevisionReason.HEALTH_CHECK_CONTAINER_ERROR)
NON_ZERO_EXIT = int(run_v2.Condition.ExecutionReason.NON_ZERO_EXIT_CODE)
RUNNING, SUCCEEDED, FAILED = (int(run_v2.ExecutionReference.CompletionStatus[s]) for s in
                              ("EXECUTION_RUNNING", "EXECUTION_SUCCEEDED", "EXECUTION_FAILED"))

# Output-only (and identifier) fields: never taken from a request.
SERVICE_OUTPUT = {"name", "etag", "uid", "generation", "create_time", "update_time", "delete_time",
                  "expire_time", "creator", "last_modifier", "urls", "observed_generation",
                  "terminal_condition", "conditions", "latest_ready_revision", "latest_created_revision",
                  "traffic_statuses", "uri", "satisfies_pzs", "threat_detection_enabled", "reconciling"}
JOB_OUTPUT = {"name", "etag", "uid", "generation", "create_time", "update_time", "delete_time", "expire_time",
              "creator", "last_modifier", "observed_generation", "terminal_condition", "conditions",
              "execution_count", "latest_created_execution", "reconciling", "satisfies_pzs"}
RESERVED_NAMESPACES = ("run.googleapis.com", "cloud.googleapis.com", "serving.knative.dev",
                       "autoscaling.knative.dev")
RESERVED_ENV = ("PORT", "K_SERVICE", "K_REVISION", "K_CONFIGURATION")
NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
HTTP = {code_pb2.INVALID_ARGUMENT: 400, code_pb2.FAILED_PRECONDITION: 400, code_pb2.OUT_OF_RANGE: 400,
        code_pb2.UNAUTHENTICATED: 401, code_pb2.PERMISSION_DENIED: 403, code_pb2.NOT_FOUND: 404,
        code_pb2.ABORTED: 409, code_pb2.ALREADY_EXISTS: 409, code_pb2.INTERNAL: 500,
        code_pb2.UNIMPLEMENTED: 501, code_pb2.DEADLINE_EXCEEDED: 504}
NOT_READY = ("Revision '{revision}' is not ready and cannot serve traffic. {reason}")
FAILED_TO_LISTEN = ("The user-provided container failed to start and listen on the port defined provided by "
                    "the PORT={port} environment variable within the allocated timeout. This can happen "
                    "when the container port is misconfigured or if the timeout is too short. The health "
                    "check timeout can be extended. Logs for this revision might contain more information."
                    "\n\nLogs URL: {logs}\nFor more troubleshooting guidance, see "
                    "https://cloud.google.com/run/docs/troubleshooting#container-failed-to-start")
UNAUTHENTICATED = ("Request had invalid authentication credentials. Expected OAuth 2 access token, login "
                   "cookie or other valid authentication credential. See "
                   "https://developers.google.com/identity/sign-in/web/devconsole-project.")
SCALE_DOWN_AFTER = 5.0
TOKEN_HOST = "oauth2.googleapis.com"  # google-auth always sends authorized_user refreshes there


class ApiError(Exception):
    """Answered as a google.rpc-style JSON error with the HTTP status of its code."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code, self.message = code, message

    def body(self) -> dict:
        return {"error": {"code": HTTP.get(self.code, 500), "message": self.message,
                          "status": code_pb2.Code.Name(self.code)}}


class Failure(Exception):
    """Ends an operation with error (code, message)."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code, self.message = code, message


class Abandoned(Exception):
    """The resource an operation worked on was reset away meanwhile."""


def parse(body: bytes, message_class):
    message = message_class()
    try:
        json_format.Parse(body or b"{}", message)
    except json_format.ParseError as error:
        raise ApiError(code_pb2.INVALID_ARGUMENT, f"Invalid JSON payload received. {error}") from None
    return message


def render(message) -> dict:
    return json_format.MessageToDict(message)


def now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    return stamp


def copy(message):
    duplicate = type(message)()
    duplicate.CopyFrom(message)
    return duplicate


def new_etag() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(12)).decode()


def suffix(length: int, alphabet: str = "abcdefghijklmnopqrstuvwxyz0123456789") -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def condition(kind: str, ok: bool | None, message: str = "", **reason) -> object:
    state = State.CONDITION_RECONCILING if ok is None else (State.CONDITION_SUCCEEDED if ok else
                                                            State.CONDITION_FAILED)
    return ConditionPb(type_=kind, state=int(state), message=message, last_transition_time=now(),
                       severity=0 if ok is not False else int(run_v2.Condition.Severity.ERROR), **reason)


def with_input(resource, request, output_only: set[str], mask: str | None):
    """`resource` with its input fields from `request`: all of them, or only the update mask's paths."""
    updated = copy(resource)
    if mask:
        paths = field_mask_pb2.FieldMask()
        paths.FromJsonString(mask)
        if not paths.IsValidForDescriptor(type(resource).DESCRIPTOR):
            raise ApiError(code_pb2.INVALID_ARGUMENT, f"Invalid update mask: {mask}")
        paths.MergeMessage(request, updated, replace_message_field=True, replace_repeated_field=True)
        return updated
    for descriptor in type(resource).DESCRIPTOR.fields:
        if descriptor.name not in output_only:
            updated.ClearField(descriptor.name)
    spec = copy(request)
    for name in output_only:
        spec.ClearField(name)
    updated.MergeFrom(spec)
    return updated


def check_namespaces(where: str, new: dict, old: dict) -> None:
    """Reserved label/annotation namespaces are refused on keys a request adds or changes."""
    for key, value in new.items():
        prefix = key.split("/", 1)[0] if "/" in key else ""
        if any(prefix == ns or prefix.endswith("." + ns) for ns in RESERVED_NAMESPACES) and old.get(key) != value:
            raise ApiError(code_pb2.INVALID_ARGUMENT, f"{where}: Cloud Run API v2 does not support labels or "
                           f"annotations with the '{prefix}' namespace ('{key}').")


def check_containers(where: str, template_containers, reserved: tuple[str, ...]) -> None:
    if not template_containers:
        raise ApiError(code_pb2.INVALID_ARGUMENT, f"{where}.containers: at least one container is required.")
    for index, container in enumerate(template_containers):
        if not container.image:
            raise ApiError(code_pb2.INVALID_ARGUMENT, f"{where}.containers[{index}].image: Required.")
        taken = [env.name for env in container.env if env.name in reserved]
        if taken:
            raise ApiError(code_pb2.INVALID_ARGUMENT, f"The following reserved env names were provided: "
                           f"{', '.join(taken)}. These values are automatically set by the system.")


def check_traffic(service_id: str, traffic) -> None:
    tags = [target.tag for target in traffic if target.tag]
    for index, target in enumerate(traffic):
        where = f"service.traffic[{index}]"
        if target.type_ == LATEST and target.revision:
            raise ApiError(code_pb2.INVALID_ARGUMENT, f"{where}: a LATEST target cannot name a revision.")
        if target.type_ == REVISION and not target.revision:
            raise ApiError(code_pb2.INVALID_ARGUMENT, f"{where}.revision: Required for type REVISION.")
        if target.type_ not in (LATEST, REVISION):
            raise ApiError(code_pb2.INVALID_ARGUMENT, f"{where}.type: Required.")
        if not 0 <= target.percent <= 100:
            raise ApiError(code_pb2.INVALID_ARGUMENT, f"{where}.percent: must be between 0 and 100.")
        if target.tag and not NAME.match(target.tag):
            raise ApiError(code_pb2.INVALID_ARGUMENT, f"{where}.tag: '{target.tag}' must be lowercase "
                           "letters, digits and hyphens, starting with a letter.")
    if traffic and sum(target.percent for target in traffic) != 100:
        raise ApiError(code_pb2.INVALID_ARGUMENT, f"service.traffic: Traffic targets sum to "
                       f"{sum(t.percent for t in traffic)}, want 100.")
    if len(tags) != len(set(tags)):
        duplicate = next(tag for tag in tags if tags.count(tag) > 1)
        raise ApiError(code_pb2.INVALID_ARGUMENT, f"service.traffic: Multiple definitions for tag "
                       f"'{duplicate}'; tags must be unique.")


def check_revision_name(service_id: str, name: str) -> None:
    if not name:
        return
    if not name.startswith(f"{service_id}-") or len(name) > 63 or not NAME.match(name):
        raise ApiError(code_pb2.INVALID_ARGUMENT, "service.template.revision: Revision name must be prefixed by "
                       "the name of the enclosing Service or Configuration with a trailing -, at most 63 "
                       f"lowercase letters, digits and hyphens: '{name}'.")


@dataclass
class RevisionState:
    pb: object                      # run_v2 Revision
    template: object                # the RevisionTemplate it was made from (for "same name, other config")
    container: str | None = None    # docker id while running
    port: int | None = None
    last_log: str = ""


@dataclass
class ServiceState:
    pb: object
    revisions: dict[str, RevisionState] = field(default_factory=dict)
    worker: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1))
    policy: object = field(default_factory=policy_pb2.Policy)


@dataclass
class ExecutionState:
    pb: object
    tasks: list[dict] = field(default_factory=list)  # {"index", "attempt", "exitCode", "output"}


@dataclass
class JobState:
    pb: object
    executions: dict[str, ExecutionState] = field(default_factory=dict)
    policy: object = field(default_factory=policy_pb2.Policy)


def short(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def location_of(name: str) -> str:
    return "/".join(name.split("/")[:4])


def kind_error(kind: str, name: str) -> ApiError:
    parts = name.split("/")
    return ApiError(code_pb2.NOT_FOUND, f"Resource '{parts[-1]}' of kind '{kind}' in region '{parts[3]}' in "
                    f"project '{parts[1]}' does not exist.")


class Operations:
    """google.longrunning operations: started by a write, finished by the worker that carries it out."""

    def __init__(self):
        self._lock = threading.Lock()
        self._ops: dict[str, operations_pb2.Operation] = {}
        self._done: dict[str, threading.Event] = {}

    def start(self, location: str, metadata) -> operations_pb2.Operation:
        operation = operations_pb2.Operation(name=f"{location}/operations/{uuid.uuid4()}")
        operation.metadata.Pack(metadata)
        with self._lock:
            self._ops[operation.name] = operation
            self._done[operation.name] = threading.Event()
            return copy(operation)

    def finish(self, name: str, metadata, response=None, error: Failure | None = None) -> None:
        with self._lock:
            operation = self._ops.get(name)
            if operation is None:
                return
            operation.metadata.Pack(metadata)
            operation.done = True
            if error is not None:
                operation.error.CopyFrom(status_pb2.Status(code=error.code, message=error.message))
            else:
                operation.response.Pack(response)
            self._done[name].set()

    def get(self, name: str) -> operations_pb2.Operation:
        with self._lock:
            if name not in self._ops:
                raise ApiError(code_pb2.NOT_FOUND, f"Operation '{name}' not found.")
            return copy(self._ops[name])

    def wait(self, name: str, timeout: float) -> operations_pb2.Operation:
        self.get(name)
        self._done[name].wait(timeout)
        return self.get(name)

    def list(self, location: str) -> list:
        with self._lock:
            return [copy(op) for name, op in self._ops.items() if name.startswith(location + "/")]

    def clear(self) -> None:
        with self._lock:
            self._ops.clear()
            self._done.clear()


class CloudRun:
    """The state of every service, revision, job and execution, and the rules that guard it."""

    def __init__(self, engine: containers.Engine, router, secrets_: dict[str, str] | None = None,
                 scale_down_after: float = SCALE_DOWN_AFTER):
        self.engine, self.router = engine, router
        self.initial_secrets = dict(secrets_ or {})
        self.secrets = dict(self.initial_secrets)
        self.scale_down_after = scale_down_after
        self.lock = threading.RLock()
        self.services: dict[str, ServiceState] = {}
        self.jobs: dict[str, JobState] = {}
        self.operations = Operations()
        self.urls: dict[str, str] = {}  # service id -> router URL, kept across resets
        self.files = Path(tempfile.mkdtemp(prefix="fake-gcp-"))  # secret volumes
        self.base_url = ""  # the API's own URL, for log_uri (set once serving)
        self.id_tokens: set[str] = set()  # what /token issued: a private service's URL accepts them

    # --- services -------------------------------------------------------------------------------------

    def get_service(self, name: str):
        with self.lock:
            return copy(self._service(name).pb)

    def list_services(self, parent: str) -> list:
        with self.lock:
            return [copy(s.pb) for n, s in sorted(self.services.items()) if n.startswith(parent + "/")]

    def create_service(self, parent: str, service_id: str, body: bytes, validate_only: bool = False):
        request = parse(body, ServicePb)
        if not NAME.match(service_id or "") or len(service_id) >= 50:
            raise ApiError(code_pb2.INVALID_ARGUMENT, f"service_id '{service_id}': must begin with a letter, "
                           "contain only lowercase letters, digits and hyphens, and be under 50 characters.")
        name = f"{parent}/services/{service_id}"
        with self.lock:
            if name in self.services:
                raise ApiError(code_pb2.ALREADY_EXISTS, f"Resource '{service_id}' already exists.")
            service = with_input(ServicePb(name=name), request, SERVICE_OUTPUT, None)
            self._check_service(service_id, service, ServicePb(), {})
            if not service.ingress:
                service.ingress = int(run_v2.IngressTraffic.INGRESS_TRAFFIC_ALL)
            if validate_only:
                return self._done_operation(service)
            if service_id not in self.urls:
                self.urls[service_id] = self.router.add_service(service_id)
            service.uid, service.generation, service.etag = str(uuid.uuid4()), 1, new_etag()
            service.create_time.CopyFrom(now())
            service.update_time.CopyFrom(service.create_time)
            service.creator = service.last_modifier = "fake-user@shipshape.test"
            service.uri = self.urls[service_id]
            service.urls.append(service.uri)
            state = self.services[name] = ServiceState(service)
            self._guard(state)
            return self._accept(state, self._new_revision(state))

    def update_service(self, name: str, body: bytes, query: dict):
        request = parse(body, ServicePb)
        if request.name and request.name != name:
            raise ApiError(code_pb2.INVALID_ARGUMENT, f"service.name '{request.name}' does not match the URL.")
        with self.lock:
            if name not in self.services and query.get("allowMissing") == "true":
                return self.create_service(name.rsplit("/services/", 1)[0], short(name), body,
                                           query.get("validateOnly") == "true")
            state = self._service(name)
            current = state.pb
            if request.etag and request.etag != current.etag:
                raise ApiError(code_pb2.ABORTED, f"Resource '{short(name)}' has been modified: the etag in the "
                               "request does not match the current one. Read it again and retry.")
            service = with_input(current, request, SERVICE_OUTPUT, query.get("updateMask"))
            self._check_service(short(name), service, current, state.revisions)
            service.ingress = service.ingress or int(run_v2.IngressTraffic.INGRESS_TRAFFIC_ALL)
            changed = service.template != current.template
            existing = state.revisions.get(service.template.revision)
            if changed and existing is not None:
                if existing.template != service.template:
                    raise ApiError(code_pb2.ALREADY_EXISTS, f"Revision named '{service.template.revision}' "
                                   "with different configuration already exists.")
                changed = False  # the template of an existing revision, by its name: nothing to build
            if query.get("validateOnly") == "true":
                return self._done_operation(service)
            service.generation += 1
            service.etag = new_etag()
            service.update_time.CopyFrom(now())
            service.last_modifier = "fake-user@shipshape.test"
            state.pb = service
            return self._accept(state, self._new_revision(state) if changed else None)

    def _check_service(self, service_id: str, service, current, revisions: dict) -> None:
        check_namespaces("service", dict(service.annotations), dict(current.annotations))
        check_namespaces("service", dict(service.labels), dict(current.labels))
        check_namespaces("service.template", dict(service.template.annotations),
                         dict(current.template.annotations))
        check_namespaces("service.template", dict(service.template.labels), dict(current.template.labels))
        check_containers("service.template", service.template.containers, RESERVED_ENV)
        check_revision_name(service_id, service.template.revision)
        check_traffic(service_id, service.traffic)

    def _new_revision(self, state: ServiceState) -> str:
        service = state.pb
        name = service.template.revision or f"{short(service.name)}-{service.generation:05d}-{suffix(3)}"
        template = copy(service.template)
        spec = copy(template)
        spec.ClearField("revision")
        revision = json_format.ParseDict(render(spec), RevisionPb(), ignore_unknown_fields=True)
        revision.name = f"{service.name}/revisions/{name}"
        revision.uid, revision.generation, revision.etag = str(uuid.uuid4()), 1, new_etag()
        revision.service = short(service.name)
        revision.create_time.CopyFrom(now())
        revision.update_time.CopyFrom(revision.create_time)
        revision.launch_stage = service.launch_stage
        revision.reconciling = True
        revision.log_uri = f"{self.base_url}/_fake/logs?revision={urllib.parse.quote(revision.name)}"
        revision.conditions.append(condition("Ready", None, "Deploying revision."))
        state.revisions[name] = RevisionState(revision, template)
        service.latest_created_revision = revision.name
        return name

    def _accept(self, state: ServiceState, revision: str | None):
        state.pb.reconciling = True
        operation = self.operations.start(location_of(state.pb.name), state.pb)
        state.worker.submit(self._reconcile, state, operation.name, revision)
        return operation

    def _done_operation(self, resource):
        operation = self.operations.start(location_of(resource.name), resource)
        self.operations.finish(operation.name, resource, response=resource)
        return self.operations.get(operation.name)

    def _service(self, name: str) -> ServiceState:
        if name not in self.services:
            raise kind_error("SERVICE", name)
        return self.services[name]

    def _mine(self, state: ServiceState) -> ServiceState:
        if self.services.get(state.pb.name) is not state:
            raise Abandoned()
        return state

    # --- reconciling a service: start the new revision, then route --------------------------------------

    def _reconcile(self, state: ServiceState, operation: str, revision: str | None) -> None:
        try:
            if revision:
                self._bring_up(state, revision)
            statuses = self._route(state)
            with self.lock:
                service = self._mine(state).pb
                del service.traffic_statuses[:]
                service.traffic_statuses.extend(statuses)
                service.observed_generation = service.generation
                service.terminal_condition.CopyFrom(condition("Ready", True))
                del service.conditions[:]
                service.conditions.extend([condition("RoutesReady", True), condition("ConfigurationsReady", True)])
                service.reconciling = False
                self.operations.finish(operation, service, response=service)
        except Failure as failure:
            with self.lock:
                if self.services.get(state.pb.name) is state:
                    service = state.pb
                    service.terminal_condition.CopyFrom(condition("Ready", False, failure.message))
                    service.reconciling = False
                    self.operations.finish(operation, service, error=failure)
        except Abandoned:
            pass
        except Exception as error:  # a bug in the fake: say so in the operation, not only on stderr
            traceback.print_exc(file=sys.stderr)
            with self.lock:
                state.pb.reconciling = False
                self.operations.finish(operation, state.pb, error=Failure(code_pb2.INTERNAL, f"fake: {error!r}"))
        finally:
            timer = threading.Timer(self.scale_down_after, self._scale_down_later, (state,))
            timer.daemon = True
            timer.start()

    def _bring_up(self, state: ServiceState, revision: str) -> None:
        """Start the new revision and wait for its startup probe; a failure marks it not ready for good."""
        try:
            self._start_container(state, revision)
        except Failure as failure:
            with self.lock:
                pb = self._mine(state).revisions[revision].pb
                pb.reconciling = False
                del pb.conditions[:]
                pb.conditions.append(condition("Ready", False, failure.message, revision_reason=HEALTH_CHECK_ERROR))
            raise Failure(failure.code, NOT_READY.format(revision=revision, reason=failure.message)) from None
        with self.lock:
            pb = self._mine(state).revisions[revision].pb
            pb.reconciling = False
            pb.observed_generation = pb.generation
            del pb.conditions[:]
            pb.conditions.extend([condition("Ready", True), condition("ContainerHealthy", True),
                                  condition("ResourcesAvailable", True)])
            state.pb.latest_ready_revision = pb.name

    def _start_container(self, state: ServiceState, revision: str) -> None:
        with self.lock:
            record = self._mine(state).revisions[revision]
            template = copy(record.template)
            service_id = short(state.pb.name)
        main = template.containers[0]
        port = containers.free_port()
        env = self._env(main, "spec.template.spec.containers[0]")
        env.update(PORT=str(port), K_SERVICE=service_id, K_REVISION=revision, K_CONFIGURATION=service_id)
        spec = containers.Spec(main.image, tuple(main.command), tuple(main.args), env,
                               self._mounts(template, main, revision), main.working_dir)
        name = containers.container_name(revision)
        try:
            container = self.engine.start(name, spec)
            with self.lock:
                gone = self.services.get(state.pb.name) is not state
                if not gone:
                    record.container, record.port = container, port
            if gone:  # reset meanwhile: this container belongs to nothing any more
                self.engine.docker("rm", "-f", container)
                raise Abandoned()
            self.engine.wait_ready(container, port, probe_of(main))
        except containers.ContainerError as error:
            with self.lock:
                record.last_log = str(error)
                record.container = record.port = None
            self.engine.docker("rm", "-f", name)
            reason = str(error) if str(error).startswith("Image '") else FAILED_TO_LISTEN.format(
                port=(main.ports[0].container_port if main.ports else 8080) or 8080, logs=record.pb.log_uri)
            raise Failure(code_pb2.FAILED_PRECONDITION, reason) from None

    def _env(self, container, where: str) -> dict[str, str]:
        env = {}
        for index, var in enumerate(container.env):
            if not var.HasField("value_source"):
                env[var.name] = var.value
                continue
            ref = var.value_source.secret_key_ref
            secret_id = short(ref.secret)
            with self.lock:
                value = self.secrets.get(secret_id)
            if value is None:
                raise Failure(code_pb2.FAILED_PRECONDITION, f"{where}.env[{index}].value_from.secret_key_ref.name: "
                              f"Secret {ref.secret if '/' in ref.secret else 'projects/-/secrets/' + ref.secret}"
                              f"/versions/{ref.version or 'latest'} was not found")
            env[var.name] = value
        return env

    def _mounts(self, template, container, owner: str) -> tuple[tuple[str, str], ...]:
        """Secret volumes as files in a host directory mounted read-only; other volume kinds are ignored."""
        volumes = {volume.name: volume for volume in template.volumes}
        mounts = []
        for mount in container.volume_mounts:
            volume = volumes.get(mount.name)
            if volume is None or not volume.HasField("secret"):
                continue
            directory = self.files / owner / mount.name
            directory.mkdir(parents=True, exist_ok=True, mode=0o755)
            secret_id = short(volume.secret.secret)
            items = volume.secret.items or [run_v2.VersionToPath.pb()(path=secret_id)]
            for item in items:
                with self.lock:
                    value = self.secrets.get(secret_id)
                if value is None:
                    raise Failure(code_pb2.FAILED_PRECONDITION, f"spec.template.spec.volumes: Secret "
                                  f"projects/-/secrets/{secret_id}/versions/{item.version or 'latest'} was not found")
                (directory / item.path).write_text(value)
                (directory / item.path).chmod(0o644)
            mounts.append((str(directory), mount.mount_path))
        return tuple(mounts)

    def _route(self, state: ServiceState) -> list:
        """Resolve the traffic spec, start whatever must serve, then point the router at it."""
        with self.lock:
            service = self._mine(state).pb
            targets = list(service.traffic) or [TargetPb(type_=LATEST, percent=100)]
            resolved = [(target, self._resolve(state, target)) for target in targets]
        needed = {revision for target, revision in resolved if target.percent or target.tag}
        for revision in sorted(needed):
            with self.lock:
                container = state.revisions[revision].container
            if container is None or not self.engine.state(container)[0]:
                try:  # scaled to zero, or crashed: start it again
                    self._start_container(state, revision)
                except Failure as failure:
                    raise Failure(failure.code, NOT_READY.format(revision=revision, reason=failure.message)) from None
        with self.lock:
            self._mine(state)
            backends = {rev: f"127.0.0.1:{state.revisions[rev].port}" for rev in needed}
            percents: dict[str, int] = {}
            for target, revision in resolved:
                if target.percent:
                    percents[revision] = percents.get(revision, 0) + target.percent
            service_id = short(service.name)
            self.router.set_traffic(service_id, [(rev, pct, backends[rev]) for rev, pct in percents.items()])
            urls = self.router.set_tags(service_id, {t.tag: (rev, backends[rev]) for t, rev in resolved if t.tag})
            return [TargetStatusPb(type_=target.type_, revision=revision, percent=target.percent, tag=target.tag,
                                   uri=urls.get(target.tag, "") if target.tag else "")
                    for target, revision in resolved]

    def _resolve(self, state: ServiceState, target) -> str:
        revision = short(state.pb.latest_ready_revision) if target.type_ == LATEST else target.revision
        record = state.revisions.get(revision)
        if record is None:
            raise Failure(code_pb2.INTERNAL, f"Revision '{revision or '(latest ready)'}' does not exist or is "
                          "deleted. Update all traffic to route to currently available revisions.")
        ready = next((c for c in record.pb.conditions if c.type_ == "Ready"), None)
        if ready is None or ready.state != State.CONDITION_SUCCEEDED:
            raise Failure(code_pb2.FAILED_PRECONDITION, NOT_READY.format(
                revision=revision, reason=ready.message if ready else ""))
        return revision

    def _scale_down_later(self, state: ServiceState) -> None:
        try:
            state.worker.submit(self._scale_down, state)
        except RuntimeError:
            pass  # the worker was shut down by a reset

    def _scale_down(self, state: ServiceState) -> None:
        """Stop the containers of revisions with neither traffic nor a tag (Cloud Run scales them to zero)."""
        with self.lock:
            if self.services.get(state.pb.name) is not state:
                return
            serving = {s.revision for s in state.pb.traffic_statuses if s.percent or s.tag}
            idle = [r for name, r in state.revisions.items() if name not in serving and r.container]
            for record in idle:
                record.container, record.port, stopping = None, None, record.container
                threading.Thread(target=self.engine.stop, args=(stopping,), daemon=True).start()

    # --- revisions ------------------------------------------------------------------------------------

    def get_revision(self, name: str):
        with self.lock:
            return copy(self._revision(name)[1].pb)

    def list_revisions(self, parent: str) -> list:
        with self.lock:
            state = self._service(parent)
            return [copy(r.pb) for r in sorted(state.revisions.values(), key=lambda r: r.pb.create_time.ToNanoseconds(),
                                               reverse=True)]

    def delete_revision(self, name: str):
        with self.lock:
            state, record = self._revision(name)
            revision, service = short(name), state.pb
            used = {t.revision for t in service.traffic if t.revision} | {s.revision for s in service.traffic_statuses}
            if revision in used or name in (service.latest_created_revision, service.latest_ready_revision):
                raise ApiError(code_pb2.FAILED_PRECONDITION, f"Revision '{revision}' cannot be deleted: it "
                               "receives traffic, has a tag, or is the service's latest revision.")
            del state.revisions[revision]
            container, record.container = record.container, None
            deleted = copy(record.pb)
            deleted.delete_time.CopyFrom(now())
        if container:
            threading.Thread(target=self.engine.stop, args=(container,), daemon=True).start()
        return self._done_operation(deleted)

    def _revision(self, name: str) -> tuple[ServiceState, RevisionState]:
        service = name.split("/revisions/")[0]
        state = self.services.get(service)
        if state is None or short(name) not in state.revisions:
            raise kind_error("REVISION", name)
        return state, state.revisions[short(name)]

    def kill_revision(self, revision: str) -> bool:
        """Control: SIGKILL a revision's container (a crash). Routing to it again restarts it."""
        with self.lock:
            found = [r for s in self.services.values() for n, r in s.revisions.items()
                     if revision in (n, r.pb.name) and r.container]
        return bool(found) and self.engine.kill(found[0].container)

    # --- jobs and executions ----------------------------------------------------------------------------

    def get_job(self, name: str):
        with self.lock:
            return copy(self._job(name).pb)

    def list_jobs(self, parent: str) -> list:
        with self.lock:
            return [copy(j.pb) for n, j in sorted(self.jobs.items()) if n.startswith(parent + "/")]

    def create_job(self, parent: str, job_id: str, body: bytes, validate_only: bool = False):
        request = parse(body, JobPb)
        if not NAME.match(job_id or "") or len(job_id) > 63:
            raise ApiError(code_pb2.INVALID_ARGUMENT, f"job_id '{job_id}': lowercase letters, digits and hyphens.")
        name = f"{parent}/jobs/{job_id}"
        with self.lock:
            if name in self.jobs:
                raise ApiError(code_pb2.ALREADY_EXISTS, f"Resource '{job_id}' already exists.")
            job = with_input(JobPb(name=name), request, JOB_OUTPUT, None)
            self._check_job(job, JobPb())
            if validate_only:
                return self._done_operation(job)
            job.uid, job.generation, job.etag = str(uuid.uuid4()), 1, new_etag()
            job.create_time.CopyFrom(now())
            job.update_time.CopyFrom(job.create_time)
            job.creator = job.last_modifier = "fake-user@shipshape.test"
            self._job_ready(job)
            self.jobs[name] = JobState(job)
            return self._done_operation(job)

    def update_job(self, name: str, body: bytes, query: dict):
        request = parse(body, JobPb)
        with self.lock:
            if name not in self.jobs and query.get("allowMissing") == "true":
                return self.create_job(name.rsplit("/jobs/", 1)[0], short(name), body)
            state = self._job(name)
            self._check_etag(request.etag, state.pb)
            job = with_input(state.pb, request, JOB_OUTPUT, query.get("updateMask"))
            self._check_job(job, state.pb)
            if query.get("validateOnly") == "true":
                return self._done_operation(job)
            job.generation += 1
            job.etag = new_etag()
            job.update_time.CopyFrom(now())
            self._job_ready(job)
            state.pb = job
            return self._done_operation(job)

    def _check_job(self, job, current) -> None:
        for where, new, old in (("job", job, current), ("job.template", job.template, current.template)):
            check_namespaces(where, dict(new.annotations), dict(old.annotations))
            check_namespaces(where, dict(new.labels), dict(old.labels))
        check_containers("job.template.template", job.template.template.containers, ())

    def _check_etag(self, etag: str, current) -> None:
        if etag and etag != current.etag:
            raise ApiError(code_pb2.ABORTED, f"Resource '{short(current.name)}' has been modified: the etag in "
                           "the request does not match the current one. Read it again and retry.")

    @staticmethod
    def _job_ready(job) -> None:
        job.observed_generation = job.generation
        job.terminal_condition.CopyFrom(condition("Ready", True))

    def run_job(self, name: str, body: bytes):
        request = parse(body, RunJobRequestPb)
        with self.lock:
            state = self._job(name)
            self._check_etag(request.etag, state.pb)
            job = state.pb
            execution_id = f"{short(name)}-{suffix(5, 'abcdefghijklmnopqrstuvwxyz')}"
            execution = ExecutionPb(name=f"{name}/executions/{execution_id}", uid=str(uuid.uuid4()), generation=1,
                                    creator="fake-user@shipshape.test", job=short(name), etag=new_etag(),
                                    launch_stage=job.launch_stage, reconciling=True, running_count=1)
            execution.labels.update(job.template.labels)
            execution.annotations.update(job.template.annotations)
            execution.parallelism = job.template.parallelism
            execution.task_count = request.overrides.task_count or job.template.task_count or 1
            execution.template.CopyFrom(job.template.template)
            apply_overrides(execution.template, request.overrides)
            execution.create_time.CopyFrom(now())
            execution.start_time.CopyFrom(execution.create_time)
            execution.log_uri = f"{self.base_url}/_fake/logs?execution={urllib.parse.quote(execution.name)}"
            execution.conditions.extend([condition("ResourcesAvailable", True), condition("Started", True),
                                         condition("Completed", None, "Running.")])
            state.executions[execution.name] = ExecutionState(execution)
            job.execution_count += 1
            job.latest_created_execution.CopyFrom(run_v2.ExecutionReference.pb()(
                name=execution.name, create_time=execution.create_time, completion_status=RUNNING))
            operation = self.operations.start(location_of(name), execution)
        threading.Thread(target=self._execute, args=(state, execution.name, operation.name), daemon=True).start()
        return operation

    def _execute(self, state: JobState, name: str, operation: str) -> None:
        """Run each task (retrying up to max_retries) to completion; finish the run's operation."""
        with self.lock:
            execution = copy(state.executions[name].pb)
        template, failed, retried, logs = execution.template, 0, 0, []
        main = template.containers[0]
        for index in range(execution.task_count):
            for attempt in range(template.max_retries + 1):
                code, output = self._run_task(execution, main, index, attempt)
                logs.append({"index": index, "attempt": attempt, "exitCode": code, "output": output})
                if code == 0:
                    break
                retried += attempt < template.max_retries
            failed += code != 0
        with self.lock:
            record = state.executions.get(name)
            if record is None or self.jobs.get(state.pb.name) is not state:
                return
            record.tasks = logs
            pb = record.pb
            pb.running_count, pb.reconciling = 0, False
            pb.succeeded_count, pb.failed_count, pb.retried_count = execution.task_count - failed, failed, retried
            pb.completion_time.CopyFrom(now())
            seconds = (pb.completion_time.ToNanoseconds() - pb.start_time.ToNanoseconds()) / 1e9
            message = (f"Execution completed successfully in {seconds:.1f}s." if not failed else
                       f"Task {short(name)}-task{next(t['index'] for t in logs if t['exitCode'])} failed with "
                       "message: The container exited with an error.")
            del pb.conditions[-1]
            reason = {"execution_reason": NON_ZERO_EXIT} if failed else {}
            pb.conditions.append(condition("Completed", not failed, message, **reason))
            reference = state.pb.latest_created_execution
            if reference.name == name:
                reference.completion_time.CopyFrom(pb.completion_time)
                reference.completion_status = FAILED if failed else SUCCEEDED
            if failed:
                self.operations.finish(operation, pb, error=Failure(code_pb2.FAILED_PRECONDITION, message))
            else:
                self.operations.finish(operation, pb, response=pb)

    def _run_task(self, execution, main, index: int, attempt: int) -> tuple[int, str]:
        try:
            env = self._env(main, "spec.template.spec.containers[0]")
            mounts = self._mounts(execution.template, main, short(execution.name))
        except Failure as failure:
            return 1, f"(fake) the task could not start: {failure.message}"
        env.update(CLOUD_RUN_JOB=execution.job, CLOUD_RUN_EXECUTION=short(execution.name),
                   CLOUD_RUN_TASK_INDEX=str(index), CLOUD_RUN_TASK_ATTEMPT=str(attempt),
                   CLOUD_RUN_TASK_COUNT=str(execution.task_count))
        spec = containers.Spec(main.image, tuple(main.command), tuple(main.args), env, mounts, main.working_dir)
        timeout = execution.template.timeout.ToSeconds() or 600
        try:
            return self.engine.run_task(containers.container_name(f"{short(execution.name)}-task{index}"),
                                        spec, timeout)
        except containers.ContainerError as error:
            return 1, f"(fake) the task could not start: {error}"

    def get_execution(self, name: str):
        with self.lock:
            return copy(self._execution(name).pb)

    def list_executions(self, parent: str) -> list:
        with self.lock:
            return [copy(e.pb) for e in sorted(self._job(parent).executions.values(),
                                               key=lambda e: e.pb.create_time.ToNanoseconds(), reverse=True)]

    def _job(self, name: str) -> JobState:
        if name not in self.jobs:
            raise kind_error("JOB", name)
        return self.jobs[name]

    def _execution(self, name: str) -> ExecutionState:
        state = self.jobs.get(name.split("/executions/")[0])
        if state is None or name not in state.executions:
            raise kind_error("EXECUTION", name)
        return state.executions[name]

    # --- IAM ------------------------------------------------------------------------------------------

    def get_iam_policy(self, resource: str):
        with self.lock:
            return copy(self._owner(resource).policy)

    def set_iam_policy(self, resource: str, body: bytes):
        request = parse(body, iam_policy_pb2.SetIamPolicyRequest)
        with self.lock:
            owner = self._owner(resource)
            if request.policy.etag and request.policy.etag != owner.policy.etag:
                raise ApiError(code_pb2.ABORTED, "There were concurrent policy changes. Please retry the whole "
                               "read-modify-write with exponential backoff.")
            policy = copy(request.policy)
            policy.etag = secrets.token_bytes(8)
            policy.version = policy.version or 1
            owner.policy = policy
            if isinstance(owner, ServiceState):
                self._guard(owner)
            return copy(policy)

    def _guard(self, state: "ServiceState") -> None:
        """The service's URLs open to anyone when allUsers may invoke it, else to identity tokens only."""
        members = {m for b in state.policy.bindings if b.role == "roles/run.invoker" for m in b.members}
        self.router.set_access(short(state.pb.name), None if "allUsers" in members else self._invoker)

    def _invoker(self, authorization: str) -> bool:
        scheme, _, token = authorization.partition(" ")
        return scheme.lower() == "bearer" and token in self.id_tokens

    def _owner(self, resource: str):
        if "/jobs/" in resource:
            return self._job(resource)
        return self._service(resource)

    # --- control (tests only) -------------------------------------------------------------------------

    def seed(self, request: dict) -> dict:
        """Create a service (waiting for its first revision) and a job, as `pulumi up` leaves them."""
        result: dict = {}
        for kind in ("service", "job"):
            if kind not in request:
                continue
            parent, resource_id = request[kind]["name"].rsplit(f"/{kind}s/", 1)
            body = json.dumps(request[kind]).encode()
            create = self.create_service if kind == "service" else self.create_job
            operation = self.operations.wait(create(parent, resource_id, body).name, 300)
            name = f"{parent}/{kind}s/{resource_id}"
            if request.get("invokers"):
                with self.lock:
                    owner = self._owner(name)
                    owner.policy = policy_pb2.Policy(version=1, etag=secrets.token_bytes(8), bindings=[
                        policy_pb2.Binding(role="roles/run.invoker", members=request["invokers"])])
                    if kind == "service":
                        self._guard(owner)
            result[kind] = render(self.get_service(name) if kind == "service" else self.get_job(name))
            if operation.HasField("error"):
                result[f"{kind}Error"] = operation.error.message
        return result

    def reset(self) -> None:
        """Forget every resource and operation, stop every container; secrets back to the initial ones."""
        with self.lock:
            for state in self.services.values():
                state.worker.shutdown(wait=False, cancel_futures=True)
                self.router.set_traffic(short(state.pb.name), [])
                self.router.set_tags(short(state.pb.name), {})
            self.services.clear()
            self.jobs.clear()
            self.operations.clear()
            self.secrets = dict(self.initial_secrets)
        self.engine.remove_all()
        shutil.rmtree(self.files, ignore_errors=True)
        self.files.mkdir(parents=True, exist_ok=True)

    def snapshot(self) -> dict:
        with self.lock:
            return {
                "services": {name: {"service": render(s.pb), "iam": render(s.policy), "revisions": {
                    rev: {"revision": render(r.pb), "container": r.container, "port": r.port}
                    for rev, r in s.revisions.items()}} for name, s in self.services.items()},
                "jobs": {name: {"job": render(j.pb), "iam": render(j.policy),
                                "executions": {e: render(x.pb) for e, x in j.executions.items()}}
                         for name, j in self.jobs.items()},
                "secrets": sorted(self.secrets)}

    def logs(self, query: dict) -> dict:
        """Executions' task output (?job= or ?execution=), or a revision's container log (?revision=)."""
        if "revision" in query:
            with self.lock:
                state, record = self._revision(self._full_revision(query["revision"]))
                container, last = record.container, record.last_log
            return {"revision": record.pb.name, "log": self.engine.logs(container, 200) if container else last}
        with self.lock:
            executions = [e for j in self.jobs.values() for e in j.executions.values()
                          if query.get("job") in (None, short(e.pb.name.split("/executions/")[0]),
                                                  e.pb.name.split("/executions/")[0])
                          and query.get("execution") in (None, e.pb.name, short(e.pb.name))]
            executions.sort(key=lambda e: e.pb.create_time.ToNanoseconds())
            return {"executions": [{"name": e.pb.name, "tasks": list(e.tasks)} for e in executions]}

    def _full_revision(self, revision: str) -> str:
        if "/" in revision:
            return revision
        for state in self.services.values():
            if revision in state.revisions:
                return state.revisions[revision].pb.name
        raise ApiError(code_pb2.NOT_FOUND, f"Revision '{revision}' not found.")

    def set_secrets(self, values: dict) -> None:
        with self.lock:
            for key, value in values.items():
                if value is None:
                    self.secrets.pop(key, None)
                else:
                    self.secrets[key] = value

    def close(self) -> None:
        with self.lock:
            for state in self.services.values():
                state.worker.shutdown(wait=False, cancel_futures=True)
        self.engine.remove_all()
        shutil.rmtree(self.files, ignore_errors=True)


def probe_of(container) -> containers.Probe:
    """The startup probe: its HTTP path (else a TCP connect) and its whole budget. With none, Cloud Run's
    default: TCP, 240 s."""
    if not container.HasField("startup_probe"):
        return containers.Probe(None, 240.0)
    probe = container.startup_probe
    budget = probe.initial_delay_seconds + (probe.period_seconds or 10) * (probe.failure_threshold or 3)
    path = (probe.http_get.path or "/") if probe.HasField("http_get") else None
    return containers.Probe(path, float(budget))


def apply_overrides(template, overrides) -> None:
    """RunJobRequest.overrides: per-container args (replace, or clear) and env (merged by name), timeout."""
    for index, override in enumerate(overrides.container_overrides):
        matches = [c for c in template.containers if override.name and c.name == override.name]
        target = matches[0] if matches else template.containers[min(index, len(template.containers) - 1)]
        if override.args or override.clear_args:
            del target.args[:]
            target.args.extend(override.args)
        for var in override.env:
            kept = [e for e in target.env if e.name != var.name]
            del target.env[:]
            target.env.extend([*kept, var])
    if overrides.HasField("timeout"):
        template.timeout.CopyFrom(overrides.timeout)


# --- HTTP ----------------------------------------------------------------------------------------------

LOC = r"projects/[^/:]+/locations/[^/:]+"
ID = r"[^/:]+"
ROUTES = [  # (method, path pattern; the resource name is the path less "/v2/" and ":verb")
    ("GET", rf"/v2/(?P<r>{LOC})/services", "list_services"),
    ("POST", rf"/v2/(?P<r>{LOC})/services", "create_service"),
    ("GET", rf"/v2/(?P<r>{LOC}/services/{ID})", "get_service"),
    ("PATCH", rf"/v2/(?P<r>{LOC}/services/{ID})", "update_service"),
    ("GET", rf"/v2/(?P<r>{LOC}/(?:services|jobs)/{ID}):getIamPolicy", "get_iam_policy"),
    ("POST", rf"/v2/(?P<r>{LOC}/(?:services|jobs)/{ID}):setIamPolicy", "set_iam_policy"),
    ("GET", rf"/v2/(?P<r>{LOC}/services/{ID})/revisions", "list_revisions"),
    ("GET", rf"/v2/(?P<r>{LOC}/services/{ID}/revisions/{ID})", "get_revision"),
    ("DELETE", rf"/v2/(?P<r>{LOC}/services/{ID}/revisions/{ID})", "delete_revision"),
    ("GET", rf"/v2/(?P<r>{LOC})/jobs", "list_jobs"),
    ("POST", rf"/v2/(?P<r>{LOC})/jobs", "create_job"),
    ("GET", rf"/v2/(?P<r>{LOC}/jobs/{ID})", "get_job"),
    ("PATCH", rf"/v2/(?P<r>{LOC}/jobs/{ID})", "update_job"),
    ("POST", rf"/v2/(?P<r>{LOC}/jobs/{ID}):run", "run_job"),
    ("GET", rf"/v2/(?P<r>{LOC}/jobs/{ID})/executions", "list_executions"),
    ("GET", rf"/v2/(?P<r>{LOC}/jobs/{ID}/executions/{ID})", "get_execution"),
    ("GET", rf"/v2/(?P<r>{LOC})/operations", "list_operations"),
    ("GET", rf"/v2/(?P<r>{LOC}/operations/{ID})", "get_operation"),
    ("POST", rf"/v2/(?P<r>{LOC}/operations/{ID}):wait", "wait_operation"),
]
COMPILED = [(method, re.compile(pattern + "$"), action) for method, pattern, action in ROUTES]


class Api:
    """Requests to answers: the v2 routes (authenticated), POST /token, and /_fake/ control (not)."""

    def __init__(self, run: CloudRun, refresh_token: str):
        self.run, self.refresh_token = run, refresh_token
        self.tokens: set[str] = set()

    def handle(self, method: str, url: str, headers, body: bytes) -> tuple[int, dict]:
        parsed = urllib.parse.urlsplit(url)
        path = urllib.parse.unquote(parsed.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query).items()}
        try:
            if path == "/token" and method == "POST":
                return self.token(body)
            if path.startswith("/_fake/"):
                return 200, self.control(method, path[len("/_fake/"):], query, body)
            if not path.startswith("/v2/"):
                raise ApiError(code_pb2.NOT_FOUND, f"The requested URL {path} was not found on this server.")
            self.authenticate(headers.get("Authorization", ""))
            for route_method, pattern, action in COMPILED:
                match = pattern.match(path)
                if match and route_method == method:
                    result = getattr(self, action)(match["r"], query, body)
                    return 200, result if isinstance(result, dict) else render(result)
            raise ApiError(code_pb2.UNIMPLEMENTED, f"The Cloud Run fake does not implement {method} {path}.")
        except ApiError as error:
            return HTTP.get(error.code, 500), error.body()
        except Exception as error:  # a bug in the fake: a 500 with the reason, and the traceback on stderr
            traceback.print_exc(file=sys.stderr)
            return 500, ApiError(code_pb2.INTERNAL, f"fake: {error!r}").body()

    def authenticate(self, header: str) -> None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or token not in self.tokens:
            raise ApiError(code_pb2.UNAUTHENTICATED, UNAUTHENTICATED)

    def token(self, body: bytes) -> tuple[int, dict]:
        """OAuth2 refresh-token grant, as oauth2.googleapis.com/token answers it."""
        form = {k: v[-1] for k, v in urllib.parse.parse_qs(body.decode()).items()}
        if form.get("grant_type") != "refresh_token" or form.get("refresh_token") != self.refresh_token:
            return 400, {"error": "invalid_grant", "error_description": "Bad Request"}
        token = "ya29.fake-" + secrets.token_urlsafe(24)
        self.tokens.add(token)
        identity = fake_jwt()
        self.run.id_tokens.add(identity)
        answer = {"access_token": token, "expires_in": 3600, "token_type": "Bearer", "id_token": identity}
        if form.get("scope"):
            answer["scope"] = form["scope"]
        return 200, answer

    def control(self, method: str, action: str, query: dict, body: bytes) -> dict:
        request = json.loads(body or b"{}")
        if method == "POST" and action == "reset":
            self.run.reset()
            return {}
        if method == "POST" and action == "seed":
            return self.run.seed(request)
        if method == "GET" and action == "state":
            return self.run.snapshot()
        if method == "GET" and action == "logs":
            return self.run.logs(query)
        if method == "POST" and action == "secrets":
            self.run.set_secrets(request)
            return {"secrets": sorted(self.run.secrets)}
        if method == "POST" and action == "kill":
            return {"killed": self.run.kill_revision(request["revision"])}
        raise ApiError(code_pb2.NOT_FOUND, f"No control action {method} /_fake/{action}.")

    # v2 actions: (resource name, query, body) -> message or dict

    def list_services(self, parent, query, body):
        return {"services": [render(s) for s in self.run.list_services(parent)]}

    def create_service(self, parent, query, body):
        return self.run.create_service(parent, query.get("serviceId", ""), body, query.get("validateOnly") == "true")

    def get_service(self, name, query, body):
        return self.run.get_service(name)

    def update_service(self, name, query, body):
        return self.run.update_service(name, body, query)

    def get_iam_policy(self, resource, query, body):
        return self.run.get_iam_policy(resource)

    def set_iam_policy(self, resource, query, body):
        return self.run.set_iam_policy(resource, body)

    def list_revisions(self, parent, query, body):
        return {"revisions": [render(r) for r in self.run.list_revisions(parent)]}

    def get_revision(self, name, query, body):
        return self.run.get_revision(name)

    def delete_revision(self, name, query, body):
        return self.run.delete_revision(name)

    def list_jobs(self, parent, query, body):
        return {"jobs": [render(j) for j in self.run.list_jobs(parent)]}

    def create_job(self, parent, query, body):
        return self.run.create_job(parent, query.get("jobId", ""), body, query.get("validateOnly") == "true")

    def get_job(self, name, query, body):
        return self.run.get_job(name)

    def update_job(self, name, query, body):
        return self.run.update_job(name, body, query)

    def run_job(self, name, query, body):
        return self.run.run_job(name, body)

    def list_executions(self, parent, query, body):
        return {"executions": [render(e) for e in self.run.list_executions(parent)]}

    def get_execution(self, name, query, body):
        return self.run.get_execution(name)

    def list_operations(self, location, query, body):
        return {"operations": [render(op) for op in self.run.operations.list(location)]}

    def get_operation(self, name, query, body):
        return self.run.operations.get(name)

    def wait_operation(self, name, query, body):
        request = json.loads(body or b"{}")
        timeout = float(str(request.get("timeout", "60s")).rstrip("s") or 60)
        return self.run.operations.wait(name, min(timeout, 300))


def fake_jwt() -> str:
    """An id_token-shaped string (header.payload.signature); nothing here verifies it."""
    part = lambda data: base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")  # noqa: E731
    return ".".join([part({"alg": "RS256", "typ": "JWT"}), part({"iss": "fake-gcp", "sub": "fake-user",
                     "exp": int(time.time()) + 3600, "jti": secrets.token_hex(8)}), "ZmFrZQ"])


def google_tls(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """TLS for TOKEN_HOST: a throwaway CA (tests/support/tls.py) and a certificate it signs; (server
    context, the CA's PEM for REQUESTS_CA_BUNDLE)."""
    ca = TestCA(directory)
    chain, private = ca.issue(directory / "token-host", days=30, dns=TOKEN_HOST)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain, private)
    return context, ca.pem


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "Server"

    def do_CONNECT(self) -> None:
        """HTTPS proxy for TOKEN_HOST only: terminate TLS with the fake's certificate and answer inside
        the tunnel (so google-auth's fixed https://oauth2.googleapis.com/token reaches /token)."""
        if self.path.rsplit(":", 1)[0] != TOKEN_HOST:
            self.send_error(403, f"the fake proxies only {TOKEN_HOST}")
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        try:
            self.tunnel = self.server.tls.wrap_socket(self.connection, server_side=True)
        except (ssl.SSLError, OSError):  # a client that does not trust ca_file: it reports the TLS error
            self.close_connection = True
            return
        self.rfile, self.wfile = self.tunnel.makefile("rb"), self.tunnel.makefile("wb")
        self.close_connection = False
        while not self.close_connection:
            self.handle_one_request()

    def finish(self) -> None:
        super().finish()
        if getattr(self, "tunnel", None) is not None:
            self.tunnel.close()

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, payload = self.server.api.handle(self.command, self.path, self.headers, body)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Bearer realm="https://accounts.google.com/"')
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_DELETE = _answer

    def log_message(self, format: str, *args) -> None:
        if self.server.verbose:
            super().log_message(format, *args)


class Server(ThreadingHTTPServer):
    """The API on loopback (`url`), also an HTTPS proxy to the token endpoint (trusting `ca_file`)."""

    daemon_threads = True

    def __init__(self, api: Api, tls_directory: Path, port: int = 0, verbose: bool = False):
        super().__init__(("127.0.0.1", port), Handler)
        self.api, self.verbose = api, verbose
        self.tls, self.ca_file = google_tls(tls_directory)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        api.run.base_url = self.url
