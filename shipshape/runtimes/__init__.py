"""Process runtimes: how an app's releases are prepared and its two slots run on a host (PM2 or Docker).

Everything about processes lives below this package (dependencies, environment, start, stop, status,
logs); the release flow only calls these verbs. A runtime builds commands (data, for
`shipshape.remote.Runner`) and parses their output:

    runtime = for_stack(stack, layout)
    runner.run_all(runtime.prepare(release), stdin=runtime.env_text(env))   # deps, shared dirs, env file
    runner.run_all(runtime.export_static(release, "public", tmp))           # shipshape:app.static's files
    runner.run(runtime.run_once(release, stack.app.migrate))                 # migrations, as the app user
    runner.run_all(runtime.start(Slot("b", 8002, release)))
    states = runtime.parse_status(runner.run(runtime.status_command()).stdout)   # {"a": ProcessState...}
    runner.run_all(runtime.stop("a"))
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Protocol

from shipshape.remote import Command, Script


# Python source (stdlib only, run by the host's python3): read KEY=value env files in order into a
# mapping, the first file naming a key winning; a missing file is skipped. PM2's launcher and the
# docker runtime's env-file merge both start with it, so both runtimes read env files alike.
READ_ENV_FILES = (
    "def read_env_files(paths, into):\n"
    "    for path in paths:\n"
    "        try:\n"
    "            text = open(path).read()\n"
    "        except FileNotFoundError:\n"
    "            continue\n"
    "        for line in text.splitlines():\n"
    "            key, sep, value = line.strip().partition('=')\n"
    "            if sep and key and not key.startswith('#'):\n"
    "                into.setdefault(key.strip(), value.strip())\n"
)


def release_env_command(layout, release: "Release", owner: str | None = None) -> Script:
    """Write stdin (KEY=value lines) as the release's env file, mode 600, after the app's own
    shipshape.env, so the app's values come first (both runtimes keep the first value of a key).
    Reads stdin first: a command that exits before reading it breaks the SSH channel."""
    from shipshape.build import OVERRIDE_FILE

    q = shlex.quote
    env, override = layout.release_env(release.id), f"{release.dir}/{OVERRIDE_FILE}"
    chown = f"chown {q(owner)} {q(env + '.tmp')} && " if owner else ""
    return Script(f"STDIN=$(cat); ( umask 077; {{ if [ -f {q(override)} ]; then cat {q(override)}; echo; fi; "
                  f"printf '%s\\n' \"$STDIN\"; }} > {q(env + '.tmp')} ) && {chown}mv -f {q(env + '.tmp')} {q(env)}")


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
    image: str = ""    # docker runtime: the image id (sha256:...) the build made
    workdir: str = ""  # docker runtime: the image's working directory

    @classmethod
    def from_manifest(cls, layout, release_id: str, manifest: dict) -> "Release":
        """From releases/<id>/RELEASE (manifests before app kinds existed were Python's)."""
        return cls(release_id, layout.release(release_id), manifest.get("sha", ""),
                   manifest.get("kind", "python"),
                   manifest.get("deps_hash") or manifest.get("requirements_hash", ""),
                   manifest.get("image", ""), manifest.get("workdir", ""))


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

    def export_static(self, release: Release, static_dir: str, dest: str) -> list[Command]:
        """Copy the release's `static_dir` (shipshape:app.static.dir, relative to the app) to `dest`, a
        directory that does not exist yet; fail, naming it, when the release has no such directory.
        The caller makes the copy world-readable and moves it into place (shipshape.release_commands)."""

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

    def ship(self, runner, artifact, log) -> str:
        """Send what the host needs beyond the artifact (docker: the image's missing layers); a summary."""

    def forget(self, release_ids: list[str]) -> list[Command]:
        """Commands that drop what only these pruned releases needed (docker: their image pins)."""

    def save(self) -> list[Command]:
        """Commands that make the slots' processes as they are now come back when the host boots (PM2:
        `pm2 save`; docker: none, the restart policy does it). Sent with the change that needs them."""


def for_stack(stack, layout) -> Runtime:
    """The runtime a stack names (`shipshape:runtime`); NotSupported for one not built yet."""
    from shipshape.config import Runtime as Kind

    if stack.runtime is Kind.pm2:
        from shipshape.runtimes.pm2 import Pm2

        return Pm2.for_stack(stack, layout)
    if stack.runtime is Kind.docker:
        from shipshape.runtimes.docker import Docker

        return Docker.for_stack(stack, layout)
    raise NotSupported(f"{stack.source}: shipshape:runtime = {stack.runtime.value}: "
                       "releases with this runtime are not supported yet (use pm2 or docker)")
