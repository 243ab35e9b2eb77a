"""Process runtimes: how an app's releases are prepared and its two slots run on a host (PM2 now; Docker next).

Everything about processes lives below this package (dependencies, environment, start, stop, status,
logs); the release flow only calls these verbs. A runtime builds commands (data, for
`shipshape.remote.Runner`) and parses their output:

    runtime = for_stack(stack, layout)
    runner.run_all(runtime.prepare(release), stdin=runtime.env_text(env))   # deps, shared dirs, env file
    runner.run(runtime.run_once(release, stack.app.migrate))                 # migrations, as the app user
    runner.run_all(runtime.start(Slot("b", 8002, release)))
    states = runtime.parse_status(runner.run(runtime.status_command()).stdout)   # {"a": ProcessState...}
    runner.run_all(runtime.stop("a"))
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from shipshape.remote import Command


class NotSupported(Exception):
    """The stack names a target or runtime shipshape cannot release to yet (one line, exit 2)."""


@dataclass(frozen=True)
class Release:
    """One unpacked release on the host and what its manifest says about it."""

    id: str
    dir: str
    git_sha: str
    kind: str          # python | node (shipshape.runtimes.kinds)
    deps_hash: str     # hash of the kind's lockfiles: names the shared dependency directory

    @classmethod
    def from_manifest(cls, layout, release_id: str, manifest: dict) -> "Release":
        """From releases/<id>/RELEASE (manifests before app kinds existed were Python's)."""
        return cls(release_id, layout.release(release_id), manifest.get("sha", ""),
                   manifest.get("kind", "python"),
                   manifest.get("deps_hash") or manifest.get("requirements_hash", ""))


@dataclass(frozen=True)
class Slot:
    """One blue/green slot and the release it should run."""

    name: str          # "a" or "b"
    port: int
    release: Release

    @property
    def release_id(self) -> str:
        return self.release.id


@dataclass(frozen=True)
class ProcessState:
    """What the process manager reports for one slot."""

    name: str
    online: bool
    pid: int | None
    restarts: int
    release: str | None


class Runtime(Protocol):
    def prepare(self, release: Release) -> list[Command]:
        """Dependencies (once per lockfile hash), shared dirs and the release's env file (read from stdin)."""

    def run_once(self, release: Release, command: str) -> Command:
        """Run `command` to completion in the release's environment, as the app user (migrations)."""

    def start(self, slot: Slot) -> list[Command]:
        """Start the slot's process, replacing whatever ran there."""

    def stop(self, slot: Slot | str) -> list[Command]:
        """Stop the slot gracefully (SIGTERM, in-flight requests drain, then SIGKILL after a timeout)."""

    def status_command(self) -> Command:
        """One command whose output `parse_status` reads."""

    def parse_status(self, stdout: str) -> dict[str, ProcessState]:
        """{slot name: ProcessState} for this app's slots that the manager knows."""

    def log_tail(self, slot: Slot | str, lines: int) -> Command:
        """The last `lines` lines the slot's process printed (stdout and stderr)."""

    def log_path(self, slot: Slot | str) -> str:
        """Where the slot's full log is on the host."""

    @property
    def status_guard(self) -> str | None:
        """A pid file that must name a live process before `status_command` may run, or None."""


def for_stack(stack, layout) -> Runtime:
    """The runtime a stack names (`shipshape:runtime`); NotSupported for one not built yet."""
    from shipshape.config import Runtime as Kind

    if stack.runtime is Kind.pm2:
        from shipshape.runtimes.pm2 import Pm2

        return Pm2.for_stack(stack, layout)
    raise NotSupported(f"{stack.source}: shipshape:runtime = {stack.runtime.value}: "
                       "releases with this runtime are not supported yet (use pm2)")
