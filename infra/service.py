"""Service: the app image (Artifact Registry, built by pulumi-docker), a Cloud Run v2 service with its
own least-privilege service account and secrets from Secret Manager, and a Cloud Run job for migrations.

Release ownership: unless `pulumi_owns_release`, `fab` ships images and moves traffic, so the service
ignores changes to the image, traffic and revision after creation and `pulumi up` never undoes a release.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any, Sequence

import pulumi
import pulumi_docker as docker
import pulumi_gcp as gcp

from shipshape.config import App, Cloud
from shipshape.gcp import INVOKER_ROLE

BASE_ROLES = ("roles/cloudsql.client",)
SECRET_ACCESSOR = "roles/secretmanager.secretAccessor"
# What `fab deploy`/`fab rollback` change on the service; Pulumi leaves them alone unless it owns releases.
# (shipshape.targets.cloudrun_state.PULUMI_FIELDS_FAB_WRITES lists them; the service's own annotations
# are non-authoritative in pulumi-gcp >= 7: Pulumi never removes the shipshape.dev/ ones fab keeps there.)
# envs[0] and envs[1] are RELEASE_ID and GIT_SHA (the app contract's), which each fab release sets.
RELEASE_FIELDS = ("template.containers[0].image", "template.revision", "template.annotations",
                  "template.containers[0].envs[0]", "template.containers[0].envs[1]", "traffics",
                  "client", "clientVersion")
RELEASE_ENV = ({"name": "RELEASE_ID", "value": "pulumi-up"}, {"name": "GIT_SHA", "value": "unknown"})


@dataclass(frozen=True)
class SecretEnv:
    """An env var read from Secret Manager: `secret` is the secret id (never the value)."""

    name: str
    secret: pulumi.Input[str]


@dataclass(frozen=True)
class SecretFile:
    """A secret mounted as a file at `directory/filename` (e.g. the Redis server CA)."""

    volume: str
    secret: pulumi.Input[str]
    directory: str
    filename: str


@dataclass(frozen=True)
class ServiceArgs:
    app: App
    cloud: Cloud
    context: str  # docker build context: the app directory
    vpc_access: dict[str, Any]
    secrets: Sequence[SecretEnv] = ()
    files: Sequence[SecretFile] = ()
    production: bool = False
    skip_push: bool = False  # build only (offline review, tests); a real `pulumi up` pushes
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)


def release_ignore_changes(cloud: Cloud) -> list[str]:
    return [] if cloud.pulumi_owns_release else list(RELEASE_FIELDS)


class Service(pulumi.ComponentResource):
    """Repository, image, service account + IAM, Cloud Run service, optional public invoker, migrate job."""

    def __init__(self, name: str, args: ServiceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("shipshape:infra:Service", name, None, opts)
        self.args = args
        self._child = pulumi.ResourceOptions(parent=self)
        self.account = gcp.serviceaccount.Account(
            f"{name}-sa", account_id=f"{args.app.name}-run"[:30],
            display_name=f"Cloud Run service {args.app.name}", opts=self._child)
        self.member = pulumi.Output.concat("serviceAccount:", self.account.email)
        grants = self._grant_roles(name)
        self.image_ref = self._image(name)
        self.service = self._service(name, grants)
        self.job = self._migrate_job(name, grants)
        self._invokers(name)
        self.url = self.service.uri
        self.register_outputs({"url": self.url, "image": self.image_ref, "account": self.account.email,
                               "migrate_job": self.job.name})

    def _grant_roles(self, name: str) -> list[pulumi.Resource]:
        grants: list[pulumi.Resource] = [
            gcp.projects.IAMMember(f"{name}-role-{role.split('/')[-1].replace('.', '-')}",
                                   project=self.args.cloud.project, role=role, member=self.member,
                                   opts=self._child)
            for role in (*BASE_ROLES, *self.args.cloud.service_roles)]
        grants += [gcp.secretmanager.SecretIamMember(
            f"{name}-reads-{env.name.lower().replace('_', '-')}", secret_id=env.secret,
            role=SECRET_ACCESSOR, member=self.member, opts=self._child) for env in self.args.secrets]
        grants += [gcp.secretmanager.SecretIamMember(
            f"{name}-reads-{file.volume}", secret_id=file.secret, role=SECRET_ACCESSOR, member=self.member,
            opts=self._child) for file in self.args.files]
        return grants

    def _image(self, name: str) -> pulumi.Output[str]:
        app, cloud = self.args.app, self.args.cloud
        self.repository = gcp.artifactregistry.Repository(
            f"{name}-repo", repository_id=app.name, format="DOCKER", location=cloud.region,
            description=f"{app.name} images", opts=self._child)
        image_name = pulumi.Output.concat(
            cloud.region, "-docker.pkg.dev/", cloud.project, "/", self.repository.repository_id,
            "/", app.name, ":", cloud.image_tag)
        self.image = docker.Image(
            f"{name}-image", image_name=image_name, skip_push=self.args.skip_push,
            build=docker.DockerBuildArgs(context=self.args.context, platform="linux/amd64"),
            opts=self._child)
        return self.image.image_name if self.args.skip_push else self.image.repo_digest

    def _envs(self) -> list[dict[str, Any]]:
        secret_envs = [{"name": env.name, "value_source": {"secret_key_ref": {
            "secret": env.secret, "version": "latest"}}} for env in self.args.secrets]
        env = {**self.args.cloud.env, **self.args.app.env}  # shipshape:app.env, as on a host, wins
        plain = [{"name": key, "value": value} for key, value in sorted(env.items())]
        return [*RELEASE_ENV, *secret_envs, *plain]  # RELEASE_ENV first: RELEASE_FIELDS ignores them by index

    def _container(self, probes: bool) -> dict[str, Any]:
        app, cloud = self.args.app, self.args.cloud
        container: dict[str, Any] = {
            "image": self.image_ref, "envs": self._envs(),
            "resources": {"limits": {"cpu": cloud.cpu, "memory": cloud.memory}}}
        if self.args.files:
            container["volume_mounts"] = [{"name": f.volume, "mount_path": f.directory} for f in self.args.files]
        if probes:
            container["ports"] = {"container_port": app.port}
            container["resources"].update(cpu_idle=True, startup_cpu_boost=True)
            # Started = the process answers its health path. Not readiness: on a fresh database that waits
            # for the migrate job, which runs after `pulumi up`; `fab deploy` checks readiness through the
            # new revision's tag URL before it moves any traffic.
            container["startup_probe"] = {"http_get": {"path": app.health_path, "port": app.port},
                                          "period_seconds": 5, "timeout_seconds": 3, "failure_threshold": 24}
            container["liveness_probe"] = {"http_get": {"path": app.health_path, "port": app.port},
                                           "period_seconds": 15, "timeout_seconds": 3, "failure_threshold": 3}
        return container

    def _service(self, name: str, grants: list[pulumi.Resource]) -> gcp.cloudrunv2.Service:
        app, cloud = self.args.app, self.args.cloud
        template = {
            "service_account": self.account.email, "vpc_access": self.args.vpc_access,
            "scaling": {"min_instance_count": cloud.min_instances, "max_instance_count": cloud.max_instances},
            "max_instance_request_concurrency": 80, "timeout": "60s",
            "containers": [self._container(probes=True)], "volumes": self._volumes()}
        return gcp.cloudrunv2.Service(
            f"{name}-service", name=app.name, location=cloud.region, ingress="INGRESS_TRAFFIC_ALL",
            deletion_protection=self.args.production, template=template,
            traffics=[{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*grants, *self.args.depends_on],
                                        ignore_changes=release_ignore_changes(cloud)))

    def _migrate_job(self, name: str, grants: list[pulumi.Resource]) -> gcp.cloudrunv2.Job:
        app, cloud = self.args.app, self.args.cloud
        container = {**self._container(probes=False), "commands": shlex.split(app.migrate)}
        return gcp.cloudrunv2.Job(
            f"{name}-migrate", name=f"{app.name}-migrate", location=cloud.region,
            deletion_protection=self.args.production,
            template={"task_count": 1, "template": {
                "service_account": self.account.email, "vpc_access": self.args.vpc_access,
                "max_retries": 0, "timeout": "600s", "containers": [container], "volumes": self._volumes()}},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*grants, *self.args.depends_on],
                                        ignore_changes=["template.template.containers[0].image", "client",
                                                        "clientVersion"]
                                        if not cloud.pulumi_owns_release else []))

    def _volumes(self) -> list[dict[str, Any]]:
        return [{"name": f.volume, "secret": {"secret": f.secret, "items": [{"version": "latest", "path": f.filename}]}}
                for f in self.args.files]

    def _invokers(self, name: str) -> None:
        members = (["allUsers"] if self.args.cloud.public else []) + list(self.args.cloud.invokers)
        for member in dict.fromkeys(members):
            slug = member.split(":")[-1].split("@")[0].lower().replace(".", "-").replace("_", "-")
            gcp.cloudrunv2.ServiceIamMember(
                f"{name}-invoker-{slug}", name=self.service.name, location=self.args.cloud.region,
                role=INVOKER_ROLE, member=member, opts=self._child)
