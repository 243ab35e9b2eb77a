"""Process managers that run the app's two slots on a host (PM2 now; Docker next).

A runtime only builds commands (data, for `shipshape.remote.Runner`) and parses their output:

    runtime = for_stack(stack, layout)
    runner.run_all(runtime.start(Slot("b", 8002, release_id, release_dir, venv, sha)))
    states = runtime.parse_status(runner.run(runtime.status_command()).stdout)   # {"a": ProcessState...}
    runner.run_all(runtime.stop("a"))
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from shipshape.remote import Command


@dataclass(frozen=True)
class Slot:
    """One blue/green slot and the release it should run."""

    name: str          # "a" or "b"
    port: int
    release_id: str
    release_dir: str   # working directory of the process
    venv: str          # the release's Python environment ({venv}/bin/python)
    git_sha: str


@dataclass(frozen=True)
class ProcessState:
    """What the process manager reports for one slot."""

    name: str
    online: bool
    pid: int | None
    restarts: int
    release: str | None


class Runtime(Protocol):
    def start(self, slot: Slot) -> list[Command]:
        """Start the slot's process, replacing whatever ran there."""

    def stop(self, slot: Slot | str) -> list[Command]:
        """Stop the slot gracefully (SIGTERM, in-flight requests drain, then SIGKILL after a timeout)."""

    def status_command(self) -> Command:
        """One command whose output `parse_status` reads."""

    def parse_status(self, stdout: str) -> dict[str, ProcessState]:
        """{slot name: ProcessState} for this app's slots that the manager knows."""


def for_stack(stack, layout) -> Runtime:
    """The runtime a stack names (`shipshape:runtime`)."""
    from shipshape.config import Runtime as Kind

    if stack.runtime is Kind.pm2:
        from shipshape.runtimes.pm2 import Pm2

        return Pm2.for_stack(stack, layout)
    raise NotImplementedError(f"{stack.source}: shipshape:runtime = {stack.runtime.value}: not supported yet")
