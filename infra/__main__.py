"""The Pulumi program (`pulumi up --stack NAME`): read and validate the stack's config, then wire pieces.

Config comes from the Pulumi CLI (so `pulumi config set` values are honoured) and is validated before
any resource is declared. Secret references (env:/file:) are resolved here, at `pulumi up` time.
"""
from __future__ import annotations

from pathlib import Path

import pulumi

from infra.stack import ProgramInputs, declare
from infra.stackconfig import stack_from_pulumi_config
from shipshape.config import Target
from shipshape.stackfile import find_root, secrets_path

stack = stack_from_pulumi_config(pulumi.get_stack())
root = find_root(Path(__file__).resolve().parent)


def resolve(ref):
    return ref.resolve(secrets_path(stack.name, root)).reveal()


script = key = None
if stack.target is not Target.cloudrun:
    from shipshape.provision import provision_script  # lazily: only host stacks need it

    script = provision_script(stack)
    if stack.host.key and not (stack.target is Target.vps and stack.gcp.create_vm):
        key = pulumi.Output.secret((root / stack.host.key).expanduser().read_text())

outputs = declare(stack, ProgramInputs(root=root, resolve=resolve, provision_script=script, private_key=key))
for name, value in outputs.items():
    pulumi.export(name, value)
