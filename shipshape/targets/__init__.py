"""Release targets: the one seam between the release flows (shipshape/release.py) and where a stack runs.

`fab deploy`, `rollback`, `restart` and `status` talk only to a `ReleaseTarget`. Its verbs are the
flow's steps; what they do differs per target:

    target      implementation                   processes
    local, vps  shipshape.targets.vps.VpsTarget            a runtime from shipshape/runtimes/ (PM2, Docker)
    cloudrun    shipshape.targets.cloudrun.CloudRunTarget  Cloud Run revisions of the service `pulumi up` made

    t = open_target(stack, root)     # validated stack; every secret reference resolved first
    with t.locked("deploy", artifact):
        state = t.read_state(artifact)
        ...
"""
from __future__ import annotations

from pathlib import Path
from typing import ContextManager, Protocol

from shipshape.config import Target as Kind
from shipshape.runtimes import NotSupported, Release, Slot, for_stack
from shipshape.lock import who  # noqa: F401  (the flows' vocabulary)
from shipshape.targets.common import DeployFailed

__all__ = ["ReleaseTarget", "NotSupported", "DeployFailed", "open_target", "who"]


class ReleaseTarget(Protocol):
    """The verbs a release flow calls, in the order a deploy calls them."""

    stack: object

    def locked(self, task: str, artifact=None) -> ContextManager: ...
    def note(self, **fields) -> None: ...
    def read_state(self, artifact=None): ...
    def preflight(self, state, artifact) -> list[str]: ...
    def upload(self, artifact, state, release: Release) -> str: ...
    def new_release(self, release_id: str, artifact) -> Release: ...
    def release(self, state, release_id: str) -> Release: ...
    def slot(self, name: str, release: Release) -> Slot: ...
    def prepare(self, release: Release, artifact) -> str: ...
    def backup(self) -> str: ...
    def migrate(self, release: Release, state=None) -> list[str]: ...
    def start(self, slot: Slot, traffic_back: list = ()) -> None: ...
    def route_commands(self, weights: dict) -> list: ...
    def route(self, weights: dict) -> None: ...
    def canary_step(self, slot: Slot, live: str, percent: int, since: float): ...
    def promote(self, state, slot: Slot, entry) -> list[str]: ...
    def switch(self, state, slot: Slot, entry, warm: bool) -> None: ...
    def stop(self, slot: str) -> None: ...
    def retire(self, state, slot: str) -> None: ...
    def record(self, entry) -> None: ...
    def notify(self, event: str, entry) -> None: ...


def secrets_for(stack, root: Path) -> dict:
    """Every secret reference the stack's releases need, resolved now (SecretError lists what is missing)."""
    from shipshape.stackfile import secrets_path
    from shipshape.stacksecrets import resolve_all

    return resolve_all(stack, secrets_path(stack.name, root))


def open_target(stack, root: Path, *, with_secrets: bool = True) -> ReleaseTarget:
    """The stack's target, connected. Refuses (SecretError) a stack whose secret references do not all
    resolve, and (GcpError) a Cloud Run stack without usable Google credentials, before anything changes."""
    values = secrets_for(stack, root) if with_secrets else {}
    if stack.target is Kind.cloudrun:
        from shipshape.gcp import Clients
        from shipshape.targets.cloudrun import CloudRunTarget

        return CloudRunTarget(stack, Clients.connect(stack.gcp), list(values.values()))
    from shipshape.layout import layout_for
    from shipshape.remote import Runner, connect
    from shipshape.stacksecrets import account_key, secret_env_key
    from shipshape.targets.vps import VpsTarget

    layout = layout_for(stack)
    runtime = for_stack(stack, layout)
    runner = Runner(connect(stack.host, root))
    runner.add_secret(*values.values())
    accounts = [(account.username, role, values[account_key(role)])
                for role, account in stack.checks.accounts.items() if account_key(role) in values]
    env = {**stack.app.env, **{name: values[secret_env_key(name)] for name in stack.app.secret_env
                               if secret_env_key(name) in values}}
    return VpsTarget(stack, layout, runner, runtime, accounts, env)
