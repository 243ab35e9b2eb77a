"""How the checks reach a host: testinfra over the SSH settings the deploy uses, behind a Runner.

testinfra's ssh backend reads `.local/ssh/config` (known_hosts, identity, and a ControlMaster so every
command reuses one connection); `TestinfraConnection` gives it the Fabric-like `run` that
`shipshape.remote.Runner` drives, so checks get the Runner's masking and its command count.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import testinfra


@dataclass(frozen=True)
class Outcome:
    stdout: str
    stderr: str
    return_code: int


@dataclass
class TestinfraConnection:
    """Adapts a testinfra Host to the `run(text, **kwargs)` shape that Runner expects."""

    host: object

    def run(self, text: str, **_ignored) -> Outcome:
        result = self.host.run(text)
        return Outcome(result.stdout, result.stderr, result.rc)


def hostspec(stack) -> str:
    return f"ssh://{stack.host.user}@{stack.host.address}:{stack.host.port}"


def testinfra_host(stack, root: Path):
    """A testinfra Host for the stack, with the project's SSH config and key when they exist."""
    ssh_config = root / ".local" / "ssh" / "config"
    key = stack.host.key and (root / stack.host.key if not Path(stack.host.key).is_absolute() else stack.host.key)
    return testinfra.get_host(
        hostspec(stack),
        ssh_config=str(ssh_config) if ssh_config.exists() else None,
        ssh_identity_file=str(key) if key else None)
