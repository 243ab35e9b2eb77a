"""The stack configuration model shared by infra/, deploy/ and checks/.

Every section is a frozen pydantic model that forbids unknown keys, so a typo fails loudly. Nothing
downstream reads raw YAML: `shipshape.stackfile.load_stack` turns Pulumi.<stack>.yaml into a `Stack`.
"""
from __future__ import annotations

import ipaddress
import re
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from shipshape.secrets import SecretRef

Port = Annotated[int, Field(ge=1, le=65535)]
Percent = Annotated[int, Field(ge=1, le=100)]
Ratio = Annotated[float, Field(ge=0.0, le=1.0)]
Seconds = Annotated[float, Field(ge=0.0, le=3600.0)]
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,29}$")]
UrlPath = Annotated[str, Field(pattern=r"^/[A-Za-z0-9_./-]*$")]


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _secret_ref(value: Any) -> SecretRef | None:
    if value is None or isinstance(value, SecretRef):
        return value
    if isinstance(value, dict) and set(value) == {"secure"}:
        raise ValueError(
            "is encrypted by Pulumi (secure:) and shipshape cannot decrypt it outside `pulumi up`;"
            " give it as env:NAME or file:NAME instead")
    if not isinstance(value, str):
        raise ValueError("expected a secret reference env:NAME, file:NAME or gcp:NAME")
    if not value.startswith(("env:", "file:", "gcp:")):
        raise ValueError(
            "looks like a plaintext secret; expected a reference env:NAME, file:NAME or gcp:NAME")
    return SecretRef.parse(value)


# `_secret_ref` over each value of a NAME: reference mapping, so an error's location ends in the NAME.
_secret_refs = TypeAdapter(dict[Any, Annotated[Any, AfterValidator(_secret_ref)]]).validate_python


Secret = Annotated[SecretRef, Field(json_schema_extra={"secret": True})]


class Target(str, Enum):
    local = "local"
    vps = "vps"
    cloudrun = "cloudrun"


class Runtime(str, Enum):
    pm2 = "pm2"
    docker = "docker"


def _relative(path: str) -> str:
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise ValueError("expected a path inside the release, e.g. logs or web/dist (no '..', no leading '/')")
    return path


RelPath = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_./-]*$"), AfterValidator(_relative)]
EnvName = Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")]


class Static(Model):
    """A directory of built files (in the release) that nginx serves itself, without the app.

    Names with a content hash (`app.3f9a1c2e.js`) are cached for a year as immutable; anything else
    is revalidated on each use. During a canary both slots' files stay reachable."""

    dir: RelPath = Field(description="the directory inside the release, e.g. public or web/dist")
    url: Annotated[str, Field(pattern=r"^/([A-Za-z0-9_.-]+/)+$")] = Field(
        "/static/", description="the URL prefix it is served under, e.g. /assets/ (leading and trailing /)")


class App(Model):
    """The application being shipped: where its code is and how to build, migrate and start it.

    Commands run as written by `sh -c` in the release directory, as the app user, with the stack's
    environment: PATH starts with the release's dependencies (a Python venv's bin, or node_modules/.bin),
    and PORT, RELEASE_ID and GIT_SHA are set.
    """

    name: Name = "app"
    repo: str = "examples/app"
    kind: Literal["python", "node"] | None = Field(
        None, description="python (requirements.txt) or node (package.json + package-lock.json); "
                          "unset: detected from the app's files at `fab build`")
    build: str = Field("", description="run locally by `fab build` in a clean export of the commit, e.g. "
                                       "`npm ci && npm run build`; its outputs ship in the artifact")
    migrate: str = Field("alembic upgrade head", description="run once per deploy before traffic moves; "
                                                             "empty: the app has no migrations")
    start: str = "uvicorn app.main:app --host 127.0.0.1 --port $PORT --timeout-graceful-shutdown 20"
    create_account: str = Field(
        "", description="creates or updates one check account (stack checks.accounts) after migrating; "
                        "gets ACCOUNT_USERNAME, ACCOUNT_ROLE and ACCOUNT_PASSWORD in its environment. "
                        "Empty: the accounts must already exist")
    env: dict[EnvName, str] = Field({}, description="plain environment variables for this stack")
    secret_env: dict[EnvName, Secret] = Field(
        {}, description="NAME: secret reference (env:/file: on a host, gcp: on Cloud Run)")
    shared_dirs: tuple[RelPath, ...] = Field(
        (), description="directories kept under shared/ across releases and linked into each one, "
                        "writable by the app user (e.g. logs, uploads)")
    static: Static | None = Field(None, description="built files nginx serves itself; unset: none")
    health_path: UrlPath = "/healthz"
    readiness_path: UrlPath = "/readyz"
    version_path: UrlPath | None = Field(
        "/version", description="answers JSON with `release`; null: the app has none, and the checks "
                                "use the release its process was started with")
    port: Port = 8001
    roles: tuple[Name, ...] = ("admin", "member", "viewer")
    modules: tuple[UrlPath, ...] = ("/api/notes", "/api/projects", "/api/reports")
    login_path: UrlPath = "/login"

    _check_secret_env = field_validator("secret_env", mode="before")(classmethod(lambda cls, v: _secret_refs(v)))

    @property
    def slot_ports(self) -> tuple[int, int]:
        """Blue/green: slot a listens on `port`, slot b on `port + 1`."""
        return (self.port, self.port + 1)


class Host(Model):
    """How to reach the machine over SSH (vps and local targets)."""

    address: str = "127.0.0.1"
    port: Port = 22
    user: str = "root"
    key: str | None = None
    app_user: str = Field(default="shipshape", pattern=r"^[a-z_][a-z0-9_-]{0,31}$")
    root: str = Field(default="/srv/shipshape", pattern=r"^/[A-Za-z0-9_./-]+$")
    http_port: Port = 80


AbsPath = Annotated[str, Field(pattern=r"^/[A-Za-z0-9_.@+/-]+$")]


class Tls(Model):
    """HTTPS at nginx (vps and local targets): certificate files already on the host, e.g. certbot's.

    nginx then serves the site on `https_port` and answers plain HTTP with a redirect (except ACME
    http-01 challenges, served from the layout's acme webroot so `certbot --webroot` can renew).
    """

    certificate: AbsPath   # e.g. /etc/letsencrypt/live/example.com/fullchain.pem
    key: AbsPath           # e.g. /etc/letsencrypt/live/example.com/privkey.pem
    https_port: Port = 443
    hsts_max_age: Annotated[int, Field(ge=0, le=63072000)] = 31536000

    @property
    def port_suffix(self) -> str:
        """The port as written in an https:// URL: ":8443", or "" for the default 443."""
        return "" if self.https_port == 443 else f":{self.https_port}"


class Canary(Model):
    """The canary: traffic steps, each judged by the sequential gate (shipshape/gate.py)."""

    steps: tuple[Percent, ...] = (10, 50, 100)
    interval: Seconds = Field(5.0, description="each step's minimum time (s)")
    max_error_rate: Ratio = Field(0.05, description="the absolute ceiling: above it with confidence, roll back")
    max_latency_ms: Annotated[int, Field(ge=1, le=60000)] = Field(
        1000, description="an answer slower than this counts as slow (the gate compares slow rates)")
    readiness_timeout: Seconds = 30.0
    confidence: Annotated[float, Field(ge=0.5, le=0.999)] = Field(
        0.95, description="the gate's confidence: its false alarms are bounded by 1 - confidence")
    tolerance: Annotated[float, Field(gt=0.0, le=0.5)] = Field(
        0.05, description="advance once the candidate is provably at most this much worse than live")
    min_requests: Annotated[int, Field(ge=1, le=100000)] = Field(
        50, description="requests the candidate must have answered before it may advance")
    max_bake: Annotated[float, Field(gt=0.0, le=7200.0)] | None = Field(
        None, description="a step without a decision by then rolls back (s); default: interval + 60")
    probe_paths: tuple[Annotated[str, Field(pattern=r"^/")], ...] = Field(
        (), description="safe GET paths the gate probes when real traffic is thin (readiness always)")
    probe_rate: Annotated[float, Field(ge=0.0, le=1000.0)] = Field(
        50.0, description="probe requests per second per slot while the gate wants more data")

    @field_validator("steps")
    @classmethod
    def _rising_to_full(cls, steps: tuple[int, ...]) -> tuple[int, ...]:
        if not steps or list(steps) != sorted(set(steps)) or steps[-1] != 100:
            raise ValueError("expected rising percentages ending at 100, e.g. [10, 50, 100]")
        return steps

    @property
    def step_limit(self) -> float:
        """The longest a step may take before it rolls back undecided."""
        return self.max_bake if self.max_bake is not None else self.interval + 60.0

    @model_validator(mode="after")
    def _bake_fits(self) -> "Canary":
        if self.max_bake is not None and self.max_bake <= self.interval:
            raise ValueError(f"max_bake ({self.max_bake:g}) must exceed interval ({self.interval:g}): a step could "
                             "never advance")
        return self


class Database(Model):
    name: Name = "app"
    user: Name = "app"
    port: Port = 5432
    version: Literal["POSTGRES_14", "POSTGRES_15", "POSTGRES_16", "POSTGRES_17", "POSTGRES_18"] = "POSTGRES_17"
    tier: str = "db-f1-micro"
    disk_gb: Annotated[int, Field(ge=10, le=65536)] = 10
    ha: bool = False
    deletion_protection: bool = False
    backups: bool = True
    point_in_time_recovery: bool = True
    public_ip: bool = False

    @field_validator("tier")
    @classmethod
    def _tier(cls, tier: str) -> str:
        expected = "expected db-f1-micro, db-g1-small or db-custom-<vCPUs>-<MB>, e.g. db-custom-2-7680"
        if tier in ("db-f1-micro", "db-g1-small"):
            return tier
        custom = re.match(r"^db-custom-(\d+)-(\d+)$", tier)
        if not custom:
            raise ValueError(expected)
        vcpus, mb = int(custom.group(1)), int(custom.group(2))
        if not (vcpus == 1 or (vcpus % 2 == 0 and vcpus <= 96)):
            raise ValueError(f"{expected}; vCPUs must be 1 or an even number up to 96")
        if mb % 256 or not (max(3840, 922 * vcpus) <= mb <= 6656 * vcpus):
            raise ValueError(f"{expected}; memory must be a multiple of 256 MB, 0.9-6.5 GB per vCPU, at least 3840")
        return tier


class Redis(Model):
    port: Port = 6379
    tier: Literal["BASIC", "STANDARD_HA"] = "BASIC"
    memory_gb: Annotated[int, Field(ge=1, le=300)] = 1
    auth: bool = True
    transit_encryption: bool = False
    version: Literal["REDIS_6_X", "REDIS_7_0", "REDIS_7_2"] = "REDIS_7_2"


class Monitoring(Model):
    enabled: bool = True
    error_rate: Ratio = 0.05
    error_window_minutes: Annotated[int, Field(ge=1, le=1440)] = 5
    memory_ratio: Ratio = 0.85
    memory_window_minutes: Annotated[int, Field(ge=1, le=1440)] = 10
    email: str | None = None
    prometheus_port: Port = 9090
    # Where Cloud Monitoring alerts go; None picks webhook if notifications.webhook is set, else email.
    channel: Literal["webhook", "slack", "email"] | None = None
    slack_channel: Annotated[str, Field(pattern=r"^#?[a-z0-9_-]{1,80}$")] | None = None
    slack_token: Secret | None = None
    uptime_period: Literal["60s", "300s", "600s", "900s"] = "60s"

    _check_slack_token = field_validator("slack_token", mode="before")(
        classmethod(lambda cls, v: _secret_ref(v)))

    @model_validator(mode="after")
    def _channel(self) -> "Monitoring":
        if self.channel == "slack" and not (self.slack_channel and self.slack_token):
            raise ValueError("expected slack_channel and slack_token (a secret reference) when channel is slack")
        if self.channel == "email" and not self.email:
            raise ValueError("expected email when channel is email")
        return self


class Notifications(Model):
    webhook: Secret | None = None
    timeout: Seconds = 3.0

    _check_webhook = field_validator("webhook", mode="before")(classmethod(lambda cls, v: _secret_ref(v)))


class Retention(Model):
    releases: Annotated[int, Field(ge=2, le=50)] = 5
    backup_days: Annotated[int, Field(ge=1, le=365)] = 7
    backup_schedule: Annotated[str, Field(pattern=r"^(\S+\s+){4}\S+$")] = "0 3 * * *"


class Account(Model):
    """A check account: the user name is config, the password is always a secret reference."""

    username: str
    password: Secret

    _check_password = field_validator("password", mode="before")(classmethod(lambda cls, v: _secret_ref(v)))


class Checks(Model):
    checklist: str = "CHECKLIST.md"
    junit: str = "checks-junit.xml"
    accounts: dict[Name, Account] = {}
    max_latency_ms: Annotated[int, Field(ge=1, le=60000)] = 500
    disk_free_min_ratio: Ratio = 0.10
    memory_free_min_ratio: Ratio = 0.10
    backup_max_age_hours: Annotated[float, Field(gt=0, le=720)] = 26.0
    # More automatic restarts than this since a serving process was started is a crash loop.
    max_restarts: Annotated[int, Field(ge=0, le=1000)] = 3
    # TLS checks (redirect, certificate) run when this is true; unset, they run when shipshape:tls is
    # set or base_url is https://.
    tls: bool | None = None
    base_url: str | None = None
    # A CA bundle (path on the machine running the checks, relative to the project root) to verify
    # the site's certificate with, for a private CA; unset, the system's trusted CAs.
    ca_file: str | None = None


class Docker(Model):
    """The docker runtime (`shipshape:runtime: docker`): the app as an image, each slot a container.

    The image is built locally from `dockerfile` (in the app's repo) and shipped over SSH; on the host
    the containers talk to the engine at `socket`, which `fab setup` starts where nothing answers."""

    dockerfile: RelPath = "Dockerfile"
    socket: AbsPath = "/run/docker.sock"
    data_root: AbsPath = "/var/lib/docker"
    stop_timeout: Annotated[int, Field(ge=1, le=600)] = Field(
        30, description="seconds between SIGTERM and SIGKILL at `docker stop`: above the app's drain time")


GCP_REGION = re.compile(r"^[a-z]+-[a-z]+\d$")


class Cloud(Model):
    """Google Cloud settings (cloudrun target, and vps hosts that Pulumi creates)."""

    project: str = Field(default="my-project", pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
    region: str = "europe-west1"
    zone: str | None = None
    min_instances: Annotated[int, Field(ge=0, le=100)] = 0
    max_instances: Annotated[int, Field(ge=1, le=1000)] = 2
    cpu: Annotated[str, Field(pattern=r"^(1|2|4|8)$")] = "1"
    memory: Annotated[str, Field(pattern=r"^\d+(Mi|Gi)$")] = "512Mi"
    public: bool = False
    pulumi_owns_release: bool = False
    image_tag: str = "latest"
    # Where `fab deploy` pushes release images: default REGION-docker.pkg.dev/PROJECT/APP, the Artifact
    # Registry repository `pulumi up` creates. And the Google API endpoints `fab` talks to (default
    # Google's; e.g. https://europe-west1-run.googleapis.com, or a private endpoint). http:// is plain text.
    registry: str | None = Field(None, pattern=r"^[a-z0-9.-]+(:\d+)?(/[a-z0-9._-]+)+$")
    run_endpoint: str | None = Field(None, pattern=r"^(https?://)?[A-Za-z0-9.-]+(:\d+)?$")
    monitoring_endpoint: str | None = Field(None, pattern=r"^(https?://)?[A-Za-z0-9.-]+(:\d+)?$")
    machine_type: str = "e2-small"
    create_vm: bool = False
    ssh_allow: tuple[str, ...] = ()
    # Review policies apply production rules (deletion protection, backups) to this stack; also
    # implied by the stack name prod/production.
    production: bool = False
    vm_image: str = "debian-cloud/debian-12"
    # Plain (non-secret) env vars, and env vars read from existing Secret Manager secrets (NAME: secret-id).
    env: dict[EnvName, str] = {}
    secret_env: dict[EnvName, Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,255}$")]] = {}
    # Extra run.invoker members (e.g. serviceAccount:ci@p.iam.gserviceaccount.com) and extra project
    # roles for the service's own account; the review rejects allUsers and primitive roles.
    invokers: tuple[str, ...] = ()
    service_roles: tuple[Annotated[str, Field(pattern=r"^roles/[A-Za-z0-9_.]+$")], ...] = ()

    @field_validator("ssh_allow")
    @classmethod
    def _cidrs(cls, ranges: tuple[str, ...]) -> tuple[str, ...]:
        for cidr in ranges:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"expected CIDR ranges such as 203.0.113.4/32, got {cidr!r}") from None
        return ranges

    @field_validator("region")
    @classmethod
    def _region(cls, region: str) -> str:
        if not GCP_REGION.match(region):
            raise ValueError("expected a GCP region such as europe-west1 or us-central1")
        return region

    @model_validator(mode="after")
    def _instances(self) -> "Cloud":
        if self.min_instances > self.max_instances:
            raise ValueError(f"min_instances ({self.min_instances}) exceeds max_instances ({self.max_instances})")
        return self


class Stack(Model):
    """One stack, validated. `name` is the stack name, `source` the file it came from."""

    name: str
    source: str
    target: Target = Target.local
    runtime: Runtime = Runtime.pm2
    app: App = App()
    host: Host = Host()
    canary: Canary = Canary()
    database: Database = Database()
    redis: Redis = Redis()
    monitoring: Monitoring = Monitoring()
    notifications: Notifications = Notifications()
    retention: Retention = Retention()
    checks: Checks = Checks()
    docker: Docker = Docker()
    gcp: Cloud = Cloud()
    tls: Tls | None = None

    @property
    def is_cloud(self) -> bool:
        return self.target is Target.cloudrun

    @model_validator(mode="after")
    def _tls_on_a_host(self) -> "Stack":
        if self.tls and self.is_cloud:
            raise ValueError("shipshape:tls: configures nginx on a host, but shipshape:target is cloudrun "
                             "(Cloud Run serves HTTPS itself): remove shipshape:tls")
        if self.tls and self.tls.https_port == self.host.http_port:
            raise ValueError(f"shipshape:tls.https_port = {self.tls.https_port}: is also shipshape:host.http_port; "
                             "expected another port")
        return self

    @model_validator(mode="after")
    def _ports_on_a_host(self) -> "Stack":
        if self.is_cloud:
            return self
        if self.app.port == 65535:
            raise ValueError("shipshape:app.port = 65535: slot b would listen on 65536; expected at most 65534")
        listeners = _host_listeners(self)
        for index, (_, subject, port) in enumerate(listeners):
            for other, _, other_port in listeners[index + 1:]:
                if port == other_port:
                    raise ValueError(f"{subject} collides with {other} ({port})")
        return self

    @model_validator(mode="after")
    def _static_apart(self) -> "Stack":
        static = self.app.static
        if not static:
            return self
        key = f"shipshape:app.static.url = {static.url}"
        if self.is_cloud:
            raise ValueError(f"{key}: nginx serves static files on a host, and shipshape:target is cloudrun; "
                             "serve them from the app or a bucket, and remove shipshape:app.static")
        app = self.app
        for path in (app.health_path, app.readiness_path, app.version_path, app.login_path, *app.modules):
            if path and (path + "/").startswith(static.url):
                raise ValueError(f"{key}: would take {path} away from the app (nginx answers it from "
                                 f"{static.dir}); expected a prefix the app does not use, e.g. /assets/")
        return self

    @model_validator(mode="after")
    def _secret_env_for_target(self) -> "Stack":
        for name, ref in self.app.secret_env.items():
            key = f"shipshape:app.secret_env.{name} = {ref}"
            if self.is_cloud and ref.kind != "gcp":
                raise ValueError(f"{key}: Cloud Run reads secrets from Secret Manager; expected gcp:SECRET_ID")
            if not self.is_cloud and ref.kind == "gcp":
                raise ValueError(f"{key}: only Cloud Run reads Secret Manager, and shipshape:target is "
                                 f"{self.target.value}; expected env:NAME or file:NAME")
        return self


def _host_listeners(stack: Stack) -> list[tuple[str, str, int]]:
    """(key, how a message names it, port) for each port a host target listens on."""
    app = f"shipshape:app.port = {stack.app.port}:"
    slots = [("shipshape:app.port", f"{app} slot {slot} ({port})", port)
             for slot, port in zip("ab", stack.app.slot_ports)]
    others = [("shipshape:host.http_port", stack.host.http_port),
              *([("shipshape:tls.https_port", stack.tls.https_port)] if stack.tls else []),
              ("shipshape:database.port", stack.database.port),
              ("shipshape:redis.port", stack.redis.port)]
    return slots + [(key, f"{key} = {port}:", port) for key, port in others]


SECTIONS = tuple(name for name in Stack.model_fields if name not in ("name", "source"))
