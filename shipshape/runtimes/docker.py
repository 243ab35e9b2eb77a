"""Docker as the slot runtime: the release is an image, each slot a container `{app}-{slot}`.

The image is built locally by `fab build` (`LocalImages.build`, from the same clean export that makes the
artifact) and shipped to the host's engine over SSH, only the layers it lacks (shipshape.images).
On the host every docker command talks to the stack's engine (`shipshape:docker.socket`).

Containers share the host's network (`--network host`), as PM2 processes do: they reach PostgreSQL and
Redis on the host's loopback with no change to those servers, no docker-proxy sits in the request
path, and dockerd needs no bridge or iptables rules. So the start command must bind 127.0.0.1 (the
checks prove it does): it is `shipshape:app.start`, run as written under `/bin/sh -c` like on PM2, or
the image's own CMD when `app.start` is empty.

A container runs as the host's app user (`--user UID:GID`), so shared dirs (mounted at
`<workdir>/<dir>`) are writable exactly as on PM2, and nothing runs as root. Its environment comes
from one env file of mode 600 (`releases/<id>/.docker.env`): the release's env file and then
shared/secrets.env, the first naming a key winning, as PM2's launcher does. Secrets are never on a
command line and never in an image layer (they only exist at run time).

Each kept release pins its image with a tag `shipshape/{app}:{release}`; pruning a release removes
that tag, so the engine deletes an image only when no kept release needs it.
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from shipshape.build import BuildError, Members, run_logged, write_tree
from shipshape.layout import Layout
from shipshape.remote import Command, Script
from shipshape.runtimes import READ_ENV_FILES, ProcessState, Release, Slot, release_env_command
from shipshape.runtimes.pm2 import shell

q = shlex.quote
LOG_OPTS = ("--log-driver", "json-file", "--log-opt", "max-size=10m", "--log-opt", "max-file=3")

# The release env file, then the shared secrets: the first file naming a key wins (as PM2's launcher).
MERGE_ENV = READ_ENV_FILES + (
    "import sys\n"
    "env = {}\n"
    "read_env_files(sys.argv[2:], env)\n"
    "open(sys.argv[1], 'w').write(''.join(f'{key}={value}\\n' for key, value in env.items()))\n"
)


# What `status_command` prints per container: a JSON object with only what parse_status reads.
STATUS_FORMAT = ('{"name":{{json .Name}},"running":{{json .State.Running}},"pid":{{json .State.Pid}},'
                 '"restarts":{{json .RestartCount}},"labels":{{json .Config.Labels}},'
                 '"health":{{if .State.Health}}{{json .State.Health.Status}}{{else}}null{{end}}}')


def image_repo(app: str) -> str:
    return f"shipshape/{app}"


@dataclass(frozen=True)
class Docker:
    """Command builders for one app's slot containers on one engine."""

    app: str
    user: str
    layout: Layout
    start_command: str
    socket: str = "/run/docker.sock"
    shared_dirs: tuple[str, ...] = ()
    stop_timeout: int = 30  # > the app's graceful drain (uvicorn 20 s, the Node sample 20 s)

    @classmethod
    def for_stack(cls, stack, layout) -> "Docker":
        return cls(app=stack.app.name, user=stack.host.app_user, layout=layout, start_command=stack.app.start,
                   socket=stack.docker.socket, shared_dirs=stack.app.shared_dirs,
                   stop_timeout=stack.docker.stop_timeout)

    # -- names -------------------------------------------------------------------------------------
    def docker(self, *args: str) -> list[str]:
        return ["docker", "-H", f"unix://{self.socket}", *args]

    def container(self, slot: Slot | str) -> str:
        return f"{self.app}-{slot.name if isinstance(slot, Slot) else slot}"

    def pin(self, release_id: str) -> str:
        """The tag that keeps a kept release's image on the host."""
        return f"{image_repo(self.app)}:{release_id}"

    def env_file(self, release: Release) -> str:
        return f"{release.dir}/.docker.env"

    def log_path(self, slot: Slot | str) -> str:
        return shlex.join(self.docker("logs", self.container(slot)))

    # -- verbs -------------------------------------------------------------------------------------
    def prepare(self, release: Release) -> list[Command]:
        """The image is on the host with the id the build recorded; pinned; shared dirs; env file."""
        if not release.image:
            raise BuildError(f"release {release.id} has no image in its manifest: build it with "
                             "`fab build` on a stack whose shipshape:runtime is docker")
        inspect = shlex.join(self.docker("image", "inspect", "--format", "{{.Id}}", release.image))
        commands: list[Command] = [
            release_env_command(self.layout, release),  # root's: only the docker CLI reads it
            Script(f"[ \"$({inspect} 2>/dev/null)\" = {q(release.image)} ] || "
                   f"{{ echo 'image {release.image} is not on the host engine' >&2; exit 4; }}"),
            self.docker("tag", release.image, self.pin(release.id)),
        ]
        for name in self.shared_dirs:
            commands.append(["install", "-d", "-m", "750", "-o", self.user, "-g", self.user,
                             self.layout.shared_dir(name)])
        return [*commands, ["echo", f"image {release.image[7:19]} pinned as {self.pin(release.id)}"]]

    def export_static(self, release: Release, static_dir: str, dest: str) -> list[Command]:
        """`docker cp` of `<workdir>/<static_dir>` out of a created (never started) container of the image."""
        source = _inside(release, static_dir)
        create = shlex.join(self.docker("create", "--label", "shipshape.once=1", self.pin(release.id), "export"))
        copy = f"{shlex.join(self.docker('cp'))} \"$cid\":{q(source + '/.')} {q(dest)}"
        return [Script(f"cid=$({create}) && {{ if {copy} >/dev/null 2>&1; then ok=0; else ok=1; fi; "
                       f"{shlex.join(self.docker('rm', '-f'))} \"$cid\" >/dev/null; "
                       f"[ $ok = 0 ] || {{ echo \"shipshape:app.static.dir = {static_dir}: no such directory "
                       f"{source} in the image of {release.id}\" >&2; exit 1; }}; }}")]

    def _run_args(self, release: Release) -> str:
        """`docker run` options every container of a release gets (shell text: the uid is looked up)."""
        mounts = [arg for name in self.shared_dirs
                  for arg in ("-v", f"{self.layout.shared_dir(name)}:{_inside(release, name)}")]
        return (f"--network host --user \"$(id -u {q(self.user)}):$(id -g {q(self.user)})\" "
                + shlex.join(["--env-file", self.env_file(release), "-e", f"RELEASE_ID={release.id}",
                              "-e", f"GIT_SHA={release.git_sha}", *mounts,
                              "--label", f"shipshape.app={self.app}",
                              "--label", f"shipshape.release={release.id}"]))

    def _merge_env(self, release: Release) -> str:
        return shlex.join(["python3", "-c", MERGE_ENV, self.env_file(release),
                           self.layout.release_env(release.id), self.layout.secrets_env])

    def _command(self, command: str) -> tuple[list[str], list[str]]:
        """What the container runs, as (options before the image, arguments after it): the command as
        written under /bin/sh, or the image's own CMD when empty."""
        if not command.strip():
            return [], []
        sh, dash_c, text = shell(command)
        return ["--entrypoint", sh], [dash_c, text]

    def run_once(self, release: Release, command: str) -> Command:
        """A one-off container of the release's image (migrations); ACCOUNT_* pass through by name."""
        entry, rest = self._command(command)
        passthrough = [a for n in ("ACCOUNT_USERNAME", "ACCOUNT_ROLE", "ACCOUNT_PASSWORD") for a in ("-e", n)]
        return Script(f"(umask 077; {self._merge_env(release)}) && "
                      f"{shlex.join(self.docker('run', '--rm'))} {self._run_args(release)} "
                      f"{shlex.join([*passthrough, '--label', 'shipshape.once=1', *entry, self.pin(release.id), *rest])}")

    def start(self, slot: Slot) -> list[Command]:
        """Replace the slot's container with one running the slot's release."""
        release, name = slot.release, self.container(slot)
        entry, rest = self._command(self.start_command)
        return [
            Script(f"(umask 077; {self._merge_env(release)})"),
            *self.stop(slot),
            Script(f"{shlex.join(self.docker('run', '-d', '--name', name))} {self._run_args(release)} "
                   + shlex.join(["-e", f"PORT={slot.port}", "--label", f"shipshape.slot={slot.name}",
                                 "--restart", "unless-stopped", "--stop-timeout", str(self.stop_timeout),
                                 "--stop-signal", "SIGTERM", *LOG_OPTS, *entry, self.pin(release.id), *rest])
                   + " >/dev/null"),
        ]

    def stop(self, slot: Slot | str) -> list[Command]:
        """`docker stop` (SIGTERM, drain up to stop_timeout, then SIGKILL) and remove; nothing if absent."""
        name = self.container(slot)
        exists = shlex.join(self.docker("container", "inspect", name))
        return [Script(f"if {exists} >/dev/null 2>&1; then "
                       f"{shlex.join(self.docker('stop', '-t', str(self.stop_timeout), name))} >/dev/null && "
                       f"{shlex.join(self.docker('rm', name))} >/dev/null; fi")]

    def ship(self, runner, artifact, log) -> str:
        """The artifact's image onto the host engine, only the layers it lacks (shipshape.images)."""
        from shipshape import images

        if not artifact.image:
            raise BuildError(f"artifact {artifact.id} has no image: build it with `fab build` on a stack "
                             "whose shipshape:runtime is docker")
        with tempfile.TemporaryDirectory(prefix="shipshape-ship-") as tmp:
            # By id: the host gets no tag until prepare pins the image to its release.
            return "image: " + images.ship(runner, self.socket, artifact.image, Path(tmp), log=log,
                                           remote_dir=self.layout.artifacts)

    def log_tail(self, slot: Slot | str, lines: int) -> Command:
        return Script(f"{shlex.join(self.docker('logs', '--tail', str(int(lines)), self.container(slot)))} 2>&1 || true")

    def status_command(self) -> Command:
        """One JSON line per slot container of this app (only the fields read: never `Config.Env`, which
        holds the app's secrets); nothing when there is none."""
        ps = shlex.join(self.docker("ps", "-aq", "--filter", f"label=shipshape.app={self.app}",
                                    "--filter", "label=shipshape.slot"))
        inspect = shlex.join(self.docker("inspect", "--format", STATUS_FORMAT))
        return Script(f"ids=$({ps}); if [ -n \"$ids\" ]; then {inspect} $ids; fi")

    @property
    def status_guard(self) -> str | None:
        return None  # asking a stopped engine fails at once and starts nothing

    def parse_status(self, stdout: str) -> dict[str, ProcessState]:
        states = {}
        for line in stdout.splitlines():
            if not line.startswith("{"):
                continue
            container = json.loads(line)
            labels = container.get("labels") or {}
            if labels.get("shipshape.app") != self.app or labels.get("shipshape.slot") is None:
                continue
            online = bool(container.get("running")) and container.get("health") in (None, "healthy")
            states[labels["shipshape.slot"]] = ProcessState(
                name=container.get("name", "").lstrip("/"), online=online,
                pid=(container.get("pid") or None) if online else None,
                restarts=int(container.get("restarts", 0)), release=labels.get("shipshape.release"))
        return states

    def save(self) -> list[Command]:
        """Nothing: slot containers run with `--restart unless-stopped`, so the engine starts them again
        when it starts (at boot, or when `fab setup` starts a stopped dockerd); a retired slot's is removed."""
        return []

    def forget(self, release_ids: list[str]) -> list[Command]:
        """Unpin pruned releases' images (the engine deletes an image once no tag needs it)."""
        if not release_ids:
            return []
        tags = shlex.join(self.docker("rmi", *(self.pin(rid) for rid in release_ids)))
        return [Script(f"{tags} >/dev/null 2>&1 || true")]


def _inside(release: Release, name: str) -> str:
    return f"{(release.workdir or '/').rstrip('/')}/{name}"


# -- the local side: `fab build` -------------------------------------------------------------------
@dataclass(frozen=True)
class LocalImages:
    """The app's images on the local engine (the ambient DOCKER_HOST, or `env`'s): build, exists."""

    app: str
    dockerfile: str = "Dockerfile"
    env: dict | None = None

    @classmethod
    def for_stack(cls, stack) -> "LocalImages":
        return cls(stack.app.name, stack.docker.dockerfile)

    def ref(self, tag: str) -> str:
        return f"{image_repo(self.app)}:{tag}"

    def _docker(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", *args], capture_output=True, text=True,
                              env={**os.environ, **(self.env or {})})

    def exists(self, image_id: str) -> bool:
        return self._docker("image", "inspect", image_id).returncode == 0

    def build(self, members: Members, tag: str, log=print) -> tuple[str, str]:
        """`docker build` of the export (what ships in the artifact); (image id, working directory)."""
        if self.dockerfile not in members:
            raise BuildError(f"shipshape:docker.dockerfile = {self.dockerfile}: not among the app's files")
        argv = ["docker", "build", "--network", "host", "-f", self.dockerfile, "-t", self.ref(tag),
                "--label", f"shipshape.app={self.app}", "--label", f"shipshape.artifact={tag}", "."]
        with tempfile.TemporaryDirectory(prefix="shipshape-image-") as tmp:
            write_tree(Path(tmp), members)
            try:
                # The classic builder: Debian's engine has no BuildKit frontend here, and the result is
                # the same image store `docker save` reads.
                run_logged(argv, Path(tmp), log, f"docker build of {self.dockerfile}",
                           {"DOCKER_BUILDKIT": "0", **(self.env or {})})
            except FileNotFoundError:
                raise BuildError("docker is not installed here: `fab build` makes the image with the local "
                                 "engine (apt-get install docker.io)") from None
        inspect = self._docker("image", "inspect", "--format", "{{.Id}} {{.Config.WorkingDir}}", self.ref(tag))
        if inspect.returncode != 0:
            raise BuildError(f"docker image inspect {self.ref(tag)}: {inspect.stderr.strip()}")
        image_id, _, workdir = inspect.stdout.strip().partition(" ")
        return image_id, workdir or "/"
