"""Network: a VPC with one regional subnet, private services access (Cloud SQL, Memorystore) and the
settings Cloud Run needs for Direct VPC egress to private ranges only."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_gcp as gcp


@dataclass(frozen=True)
class NetworkArgs:
    region: str
    subnet_cidr: str = "10.10.0.0/24"
    private_services: bool = True  # reserve a peered range for Cloud SQL / Memorystore private IPs
    peering_prefix: int = 16


class Network(pulumi.ComponentResource):
    """VPC + subnet (+ private services access). `peering` is what private-IP services depend on."""

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("shipshape:infra:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.vpc = gcp.compute.Network(
            f"{name}-vpc", auto_create_subnetworks=False, routing_mode="REGIONAL", opts=child)
        self.subnet = gcp.compute.Subnetwork(
            f"{name}-subnet", network=self.vpc.id, region=args.region, ip_cidr_range=args.subnet_cidr,
            private_ip_google_access=True, opts=child)
        self.peering: gcp.servicenetworking.Connection | None = None
        if args.private_services:
            reserved = gcp.compute.GlobalAddress(
                f"{name}-services-range", network=self.vpc.id, purpose="VPC_PEERING",
                address_type="INTERNAL", prefix_length=args.peering_prefix, opts=child)
            self.peering = gcp.servicenetworking.Connection(
                f"{name}-services", network=self.vpc.id, service="servicenetworking.googleapis.com",
                reserved_peering_ranges=[reserved.name], opts=child)
        self.register_outputs({"vpc": self.vpc.id, "subnet": self.subnet.id})

    def direct_egress(self) -> dict[str, Any]:
        """Cloud Run `vpc_access`: Direct VPC egress (no connector), only private ranges via the VPC."""
        return {"network_interfaces": [{"network": self.vpc.id, "subnetwork": self.subnet.id}],
                "egress": "PRIVATE_RANGES_ONLY"}

    def private_dependencies(self) -> list[pulumi.Resource]:
        return [self.peering] if self.peering else []
