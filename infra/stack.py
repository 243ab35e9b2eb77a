"""The whole stack, wired from validated config: which components exist and what flows between them.

`__main__` (a real `pulumi up`) and `infra.review` (offline, under mocks) both call `declare`; they
differ only in `ProgramInputs`: how secret references are resolved, the SSH key, whether images are pushed.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pulumi
import pulumi_gcp as gcp
import pulumi_random as random

from infra.cache import Cache, CacheArgs
from infra.database import Database, DatabaseArgs
from infra.monitoring import Monitoring, MonitoringArgs, channel_spec
from infra.network import Network, NetworkArgs
from infra.secret import ManagedSecret
from infra.cache import CA_DIR, CA_FILE
from infra.service import SecretEnv, SecretFile, Service, ServiceArgs
from infra.vps import Vps, VpsArgs
from shipshape.config import Stack, Target
from shipshape.secrets import SecretRef

PRODUCTION_STACKS = ("prod", "production")


@dataclass(frozen=True)
class ProgramInputs:
    root: Path  # project root: the app's build context is root / app.repo
    resolve: Callable[[SecretRef], pulumi.Input[str]]  # secret reference -> value (a real run) or placeholder
    provision_script: str | None = None  # vps/local targets only
    private_key: pulumi.Input[str] | None = None
    skip_push: bool = False


def is_production(stack: Stack) -> bool:
    return stack.gcp.production or stack.name in PRODUCTION_STACKS


def backup_start(schedule: str) -> str:
    """Cron "M H * * *" -> "HH:MM" (the daily backup time the retention config asks for)."""
    minute, hour = schedule.split()[:2]
    return f"{int(hour):02d}:{int(minute):02d}" if minute.isdigit() and hour.isdigit() else "03:00"


def declare(stack: Stack, inputs: ProgramInputs) -> dict[str, Any]:
    """Declare the stack's resources; returns the stack outputs `fab` and `checks/` read."""
    if stack.target is Target.cloudrun:
        return _cloudrun(stack, inputs)
    return _host(stack, inputs)


def _cloudrun(stack: Stack, inputs: ProgramInputs) -> dict[str, Any]:
    cloud, app = stack.gcp, stack.app
    provider = gcp.Provider("gcp", project=cloud.project, region=cloud.region, zone=cloud.zone)
    opts = pulumi.ResourceOptions(providers=[provider])
    network = Network("net", NetworkArgs(region=cloud.region), opts=opts)
    private = network.private_dependencies()
    database = Database("db", DatabaseArgs(
        region=cloud.region, network_id=network.vpc.id, settings=stack.database,
        backup_days=stack.retention.backup_days, backup_start=backup_start(stack.retention.backup_schedule),
        depends_on=private), opts=opts)
    cache = Cache("cache", CacheArgs(region=cloud.region, network_id=network.vpc.id, settings=stack.redis,
                                     depends_on=private), opts=opts)
    key = random.RandomPassword("app-secret-key", length=48, special=False)
    app_key = ManagedSecret("app-key", f"{app.name}-secret-key", key.result, opts=opts)
    secrets = [SecretEnv("DATABASE_URL", database.url_secret.secret_id),
               SecretEnv("REDIS_URL", cache.url_secret.secret_id),
               SecretEnv("SECRET_KEY", app_key.secret_id),
               *(SecretEnv(env, secret_id) for env, secret_id in sorted(cloud.secret_env.items())),
               # shipshape:app.secret_env: the keys a host stack uses too, here as gcp:SECRET_ID references
               *(SecretEnv(env, ref.name) for env, ref in sorted(app.secret_env.items()) if ref.kind == "gcp")]
    files = [SecretFile("redis-ca", cache.ca_secret.secret_id, CA_DIR, CA_FILE)] if cache.ca_secret else []
    service = Service("app", ServiceArgs(
        app=app, cloud=cloud, context=str(inputs.root / app.repo), vpc_access=network.direct_egress(),
        secrets=secrets, files=files, production=is_production(stack), skip_push=inputs.skip_push), opts=opts)
    if stack.monitoring.enabled:
        Monitoring("monitoring", MonitoringArgs(
            settings=stack.monitoring, project=cloud.project,
            health_url=pulumi.Output.concat(service.url, app.health_path), service_name=app.name,
            database_id=pulumi.Output.concat(cloud.project, ":", database.instance.name),
            channel=channel_spec(stack, inputs.resolve)), opts=opts)
    return {"target": stack.target.value, "service_url": service.url, "image": service.image_ref,
            "migrate_job": service.job.name, "service_account": service.account.email,
            "database_connection_name": database.connection_name, "database_private_ip": database.private_ip,
            "redis_host": cache.host, "region": cloud.region, "project": cloud.project}


def _host(stack: Stack, inputs: ProgramInputs) -> dict[str, Any]:
    if inputs.provision_script is None:
        raise ValueError("a vps/local stack needs the provisioning script (shipshape.provision)")
    create = stack.target is Target.vps and stack.gcp.create_vm
    opts = None
    if create:
        provider = gcp.Provider("gcp", project=stack.gcp.project, region=stack.gcp.region)
        opts = pulumi.ResourceOptions(providers=[provider])
    host = Vps("host", VpsArgs(host=stack.host, provision_script=inputs.provision_script,
                               cloud=stack.gcp if create else None, private_key=inputs.private_key), opts=opts)
    return {"target": stack.target.value, "host_address": host.address, "host_port": stack.host.port,
            "host_user": stack.host.user, "provision_sha": host.script_sha}
