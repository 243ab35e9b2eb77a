"""A Secret Manager secret holding one generated value (password, URL with credentials, signing key)."""
from __future__ import annotations

import pulumi
import pulumi_gcp as gcp


class ManagedSecret(pulumi.ComponentResource):
    """A secret plus its single version; the value is marked secret so state and logs show `[secret]`."""

    def __init__(self, name: str, secret_id: str, value: pulumi.Input[str],
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("shipshape:infra:ManagedSecret", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.secret = gcp.secretmanager.Secret(
            name, secret_id=secret_id, replication={"auto": {}},
            labels={"managed-by": "shipshape"}, opts=child)
        self.version = gcp.secretmanager.SecretVersion(
            f"{name}-v", secret=self.secret.id, secret_data=pulumi.Output.secret(value), opts=child)
        self.secret_id = self.secret.secret_id
        self.register_outputs({"secret_id": self.secret_id, "version": self.version.name})
