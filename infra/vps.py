"""VPS: a host provisioned by the same script `fab setup` runs (shipshape.provision).

Either Pulumi creates it — a Debian GCE VM with a static IP, its own network and firewall (SSH from an
allow-list only, 80/443 open), the script as its startup-script — or it takes an existing host by
address and runs the script there over SSH with pulumi-command, again whenever the script changes.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pulumi
import pulumi_command as command
import pulumi_gcp as gcp

from infra.network import Network, NetworkArgs
from shipshape.config import Cloud, Host

VM_ROLES = ("roles/logging.logWriter", "roles/monitoring.metricWriter")
WEB_PORTS = ("80", "443")


@dataclass(frozen=True)
class VpsArgs:
    host: Host
    provision_script: str  # one idempotent bash script, the one `fab setup` runs
    cloud: Cloud | None = None  # given: create a GCE VM; None: provision the existing host.address
    private_key: pulumi.Input[str] | None = None  # SSH key for an existing host (secret)


class Vps(pulumi.ComponentResource):
    """A provisioned host; `address` is where `fab` and `checks/` connect."""

    def __init__(self, name: str, args: VpsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("shipshape:infra:Vps", name, None, opts)
        self.args = args
        self._child = pulumi.ResourceOptions(parent=self)
        self.script_sha = hashlib.sha256(args.provision_script.encode()).hexdigest()
        if args.cloud is not None:
            self.address = self._vm(name, args.cloud)
        else:
            self.address = pulumi.Output.from_input(args.host.address)
            self._provision_existing(name)
        self.register_outputs({"address": self.address, "provision_sha": self.script_sha})

    def _vm(self, name: str, cloud: Cloud) -> pulumi.Output[str]:
        network = Network(f"{name}-net", NetworkArgs(region=cloud.region, private_services=False),
                          opts=self._child)
        self.firewalls = [self._firewall(f"{name}-ssh", network, ["22"], list(cloud.ssh_allow))
                          if cloud.ssh_allow else None,
                          self._firewall(f"{name}-web", network, list(WEB_PORTS), ["0.0.0.0/0"])]
        self.ip = gcp.compute.Address(f"{name}-ip", region=cloud.region, network_tier="PREMIUM",
                                      opts=self._child)
        account = gcp.serviceaccount.Account(f"{name}-sa", account_id=f"{name}-vm"[:30],
                                             display_name=f"VM {name}", opts=self._child)
        for role in VM_ROLES:
            gcp.projects.IAMMember(f"{name}-role-{role.split('.')[-1]}", project=cloud.project, role=role,
                                   member=account.member, opts=self._child)
        self.instance = gcp.compute.Instance(
            f"{name}-vm", machine_type=cloud.machine_type, zone=cloud.zone or f"{cloud.region}-b",
            tags=[name], boot_disk={"initialize_params": {"image": cloud.vm_image, "size": 20,
                                                          "type": "pd-balanced"}},
            network_interfaces=[{"subnetwork": network.subnet.id,
                                 "access_configs": [{"nat_ip": self.ip.address}]}],
            metadata={"startup-script": self.args.provision_script, "enable-oslogin": "TRUE",
                      "provision-sha": self.script_sha},
            service_account={"email": account.email, "scopes": ["cloud-platform"]},
            shielded_instance_config={"enable_secure_boot": True}, allow_stopping_for_update=True,
            opts=self._child)
        return self.ip.address

    def _firewall(self, name: str, network: Network, ports: list[str], sources: list[str]):
        return gcp.compute.Firewall(
            name, network=network.vpc.id, direction="INGRESS", source_ranges=sources,
            allows=[{"protocol": "tcp", "ports": ports}], target_tags=[name.rsplit("-", 1)[0]],
            opts=self._child)

    def _provision_existing(self, name: str) -> None:
        host = self.args.host
        shell = "bash -s" if host.user == "root" else "sudo bash -s"
        self.provision = command.remote.Command(
            f"{name}-provision", create=shell, stdin=self.args.provision_script,
            triggers=[self.script_sha],
            connection={"host": host.address, "port": host.port, "user": host.user,
                        "private_key": pulumi.Output.secret(self.args.private_key)
                        if self.args.private_key is not None else None},
            opts=self._child)
