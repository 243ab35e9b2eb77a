"""Cache: Memorystore for Redis on the VPC's private services range, with AUTH; REDIS_URL in Secret Manager."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import pulumi
import pulumi_gcp as gcp

from infra.secret import ManagedSecret
from shipshape.config import Redis as RedisSettings


@dataclass(frozen=True)
class CacheArgs:
    region: str
    network_id: pulumi.Input[str]
    settings: RedisSettings
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)


CA_DIR = "/secrets/redis-ca"  # where the service mounts the server CA (in-transit encryption only)
CA_FILE = "ca.pem"


def redis_url(host: str, port: int, auth: str | None, tls: bool) -> str:
    """redis://:AUTH@HOST:PORT/0; with in-transit encryption rediss:// verified against the mounted CA."""
    credentials = f":{auth}@" if auth else ""
    if tls:
        return f"rediss://{credentials}{host}:{port}/0?ssl_ca_certs={CA_DIR}/{CA_FILE}"
    return f"redis://{credentials}{host}:{port}/0"


def _first_cert(certs) -> str:
    if not certs:
        return ""
    first = certs[0]
    return first["cert"] if isinstance(first, dict) else first.cert


class Cache(pulumi.ComponentResource):
    """A Redis instance and the `url_secret` the service mounts as REDIS_URL."""

    def __init__(self, name: str, args: CacheArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("shipshape:infra:Cache", name, None, opts)
        redis = args.settings
        self.instance = gcp.redis.Instance(
            f"{name}-redis", tier=redis.tier, memory_size_gb=redis.memory_gb, region=args.region,
            redis_version=redis.version, auth_enabled=redis.auth,
            transit_encryption_mode="SERVER_AUTHENTICATION" if redis.transit_encryption else "DISABLED",
            authorized_network=args.network_id, connect_mode="PRIVATE_SERVICE_ACCESS",
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)))
        url = pulumi.Output.all(self.instance.host, self.instance.port, self.instance.auth_string).apply(
            lambda v: redis_url(v[0], v[1], v[2] if redis.auth else None, redis.transit_encryption))
        self.url_secret = ManagedSecret(f"{name}-url", "redis-url", url,
                                        opts=pulumi.ResourceOptions(parent=self))
        self.ca_secret = (ManagedSecret(f"{name}-ca", "redis-ca", self.instance.server_ca_certs.apply(_first_cert),
                                        opts=pulumi.ResourceOptions(parent=self))
                          if redis.transit_encryption else None)
        self.host = self.instance.host
        self.register_outputs({"host": self.host, "port": self.instance.port,
                               "url_secret": self.url_secret.secret_id})
