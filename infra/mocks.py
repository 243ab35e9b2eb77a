"""The Pulumi engine and the GCP/Docker/random/command providers, replaced for offline runs.

`run_program` runs a Pulumi program in-process with `pulumi.runtime.set_mocks`: nothing is created,
every resource registration is recorded (type, name, parent, inputs, ignore_changes) and answered with
plausible computed outputs (a Cloud SQL private IP, a Cloud Run URL...). The review and the tests both
read those records; nothing else in infra/ knows it is running under mocks.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable

import pulumi
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

STACK_TYPE = "pulumi:pulumi:Stack"


@dataclass(frozen=True)
class Registered:
    """One resource as the engine saw it: inputs (schema names, camelCase) plus mocked outputs."""

    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    state: dict[str, Any]
    ignore_changes: tuple[str, ...] = ()
    protect: bool = False


class RecordingMonitor(MockMonitor):
    """The mock resource monitor, keeping every registration for later inspection."""

    def __init__(self, mocks: pulumi.runtime.Mocks):
        super().__init__(mocks)
        self.registered: list[Registered] = []

    def RegisterResource(self, request):  # noqa: N802 (gRPC method name)
        response = super().RegisterResource(request)
        if request.type != STACK_TYPE:
            known = self.resources.get(response.urn)
            self.registered.append(Registered(
                urn=response.urn, type=request.type, name=request.name, parent=request.parent,
                custom=bool(request.custom), state=unwrap_secrets(dict(known.state)) if known else {},
                ignore_changes=tuple(request.ignoreChanges), protect=bool(request.protect)))
        return response


def unwrap_secrets(value: Any) -> Any:
    """Secret inputs arrive wrapped ({sig: secret, value: v}); policies look at the values inside."""
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            return unwrap_secrets(value.get("value"))
        return {k: unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(v) for v in value]
    return value


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _computed(typ: str, name: str, inputs: dict, gcp_project: str) -> dict[str, Any]:
    """Outputs the real provider would compute, shaped like GCP's answers."""
    project = inputs.get("project", gcp_project)
    region = inputs.get("region") or inputs.get("location") or "europe-west1"
    resource_name = inputs.get("name", name)
    table: dict[str, dict[str, Any]] = {
        "gcp:sql/databaseInstance:DatabaseInstance": {
            "connectionName": f"{project}:{region}:{resource_name}",
            "privateIpAddress": "10.20.0.3", "publicIpAddress": ""},
        "gcp:redis/instance:Instance": {
            "host": "10.30.0.4", "port": 6379, "authString": "mock-redis-auth",
            "serverCaCerts": [{"cert": "-----BEGIN CERTIFICATE-----mock"}]},
        "gcp:cloudrunv2/service:Service": {"uri": f"https://{resource_name}-mock-ew.a.run.app"},
        "gcp:serviceaccount/account:Account": {
            "email": f"{inputs.get('accountId', name)}@{project}.iam.gserviceaccount.com"},
        "gcp:compute/address:Address": {"address": "203.0.113.10"},
        "gcp:secretmanager/secret:Secret": {
            "name": f"projects/{project}/secrets/{inputs.get('secretId', name)}"},
        "gcp:monitoring/notificationChannel:NotificationChannel": {
            "name": f"projects/{project}/notificationChannels/{_digest(name)[:12]}"},
        "gcp:monitoring/uptimeCheckConfig:UptimeCheckConfig": {"uptimeCheckId": f"{name}-check"},
        "random:index/randomPassword:RandomPassword": {
            "result": f"mock-{_digest(name)[:int(inputs.get('length', 24))]}"},
        "docker:index/image:Image": {
            "repoDigest": f"{inputs.get('imageName', name).rsplit(':', 1)[0]}@sha256:{_digest(name)}"},
    }
    return {"name": resource_name, **table.get(typ, {})}


class GcpMocks(pulumi.runtime.Mocks):
    """Answers resource registrations and provider function calls without any cloud."""

    def __init__(self, gcp_project: str = "mock-project"):
        self.gcp_project = gcp_project

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        outputs = {**args.inputs, **_computed(args.typ, args.name, args.inputs, self.gcp_project)}
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


@dataclass
class ProgramRun:
    """What a mocked run declared, and its stack outputs resolved to plain values."""

    resources: list[Registered]
    outputs: dict[str, Any] = field(default_factory=dict)

    def of_type(self, typ: str) -> list[Registered]:
        return [r for r in self.resources if r.type == typ]

    def one(self, typ: str) -> Registered:
        found = self.of_type(typ)
        assert len(found) == 1, f"expected one {typ}, found {[r.name for r in found]}"
        return found[0]

    def by_urn(self) -> dict[str, Registered]:
        return {r.urn: r for r in self.resources}


def run_program(program: Callable[[], dict[str, Any]], stack: str, project: str = "shipshape",
                gcp_project: str = "mock-project") -> ProgramRun:
    """Run `program` (which declares resources and returns stack outputs) under mocks."""
    mocks = GcpMocks(gcp_project)
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=False, monitor=monitor)
    declared: dict[str, Any] = {}
    _sync_await(run_pulumi_func(lambda: declared.update(program() or {})))
    outputs = {key: _sync_await(pulumi.Output.from_input(value).future())
               for key, value in declared.items()}
    return ProgramRun(list(monitor.registered), outputs)
