"""Cloud Run revisions and job executions of the fake as real containers on one Docker engine.

Commands are data (`run_command`, `task_command`); `Engine` runs them with the docker CLI against the
engine's socket. Containers use the host's network (the test engines have no bridge), so a revision
listens on a free loopback port handed to it in PORT, as Cloud Run hands a container its port. Env
values travel in the docker CLI's environment (`-e NAME` with no value), never on a command line, so a
secret never shows in `ps`. Every container carries the label OWNER=<fake's pid>: `remove_all` removes
this fake's, `remove_stale` those of a fake that died without cleaning up.
"""
from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

OWNER = "shipshape.fake_gcp.owner"
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy
PROBE_EVERY = 0.2  # seconds between probes: faster than Cloud Run's period, the budget is the same
STOP_TIMEOUT = 10  # docker stop: SIGTERM, then SIGKILL after this (Cloud Run gives 10 s too)


class ContainerError(Exception):
    """A container that could not be started or did not get ready; the message says why."""


@dataclass(frozen=True)
class Spec:
    """What one container runs: k8s-style command (entrypoint) and args (CMD), env, read-only mounts."""

    image: str
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    mounts: tuple[tuple[str, str], ...] = ()  # (host directory, container directory)
    workdir: str = ""


@dataclass(frozen=True)
class Probe:
    """Startup probe: HTTP GET of `path` (2xx/3xx) or, with no path, a TCP connect; `budget` seconds."""

    path: str | None = None
    budget: float = 240.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def container_name(resource: str) -> str:
    return f"fakerun-{resource}"


def _entry(spec: Spec) -> list[str]:
    # Kubernetes semantics: command replaces ENTRYPOINT (and drops CMD), args replace CMD.
    if spec.command:
        return ["--entrypoint", spec.command[0], spec.image, *spec.command[1:], *spec.args]
    return [spec.image, *spec.args]


def _common(name: str, owner: str, spec: Spec) -> list[str]:
    options = ["--name", name, "--network", "host", "--label", f"{OWNER}={owner}"]
    options += [f"-e{key}" for key in spec.env]
    for host_dir, container_dir in spec.mounts:
        options += ["-v", f"{host_dir}:{container_dir}:ro"]
    return options + (["-w", spec.workdir] if spec.workdir else [])


def run_command(name: str, owner: str, spec: Spec) -> list[str]:
    """`docker run -d` of a revision's container (its env, PORT included, comes from the CLI's env)."""
    return ["run", "-d", *_common(name, owner, spec), *_entry(spec)]


def task_command(name: str, owner: str, spec: Spec) -> list[str]:
    """`docker run --rm` of one job task, attached: its output is the task's log."""
    return ["run", "--rm", *_common(name, owner, spec), *_entry(spec)]


class Engine:
    """The docker CLI on one engine, for one fake (its pid labels every container it starts)."""

    def __init__(self, docker_host: str, owner: str | None = None):
        self.docker_host = docker_host
        self.owner = owner or str(os.getpid())

    def docker(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120,
               check: bool = False) -> subprocess.CompletedProcess:
        proc = subprocess.run(["docker", "-H", self.docker_host, *args], capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, **(env or {})})
        if check and proc.returncode != 0:
            raise ContainerError(f"docker {args[0]} exited {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def ensure_image(self, image: str) -> None:
        """Pull `image` when the engine lacks it (registries on 127.0.0.0/8 are insecure, so plain pull)."""
        if self.docker("image", "inspect", "--format", "{{.Id}}", image).returncode == 0:
            return
        pulled = self.docker("pull", "--quiet", image, timeout=600)
        if pulled.returncode != 0:
            raise ContainerError(f"Image '{image}' not found.")

    def start(self, name: str, spec: Spec) -> str:
        """Start a revision's container detached (replacing a leftover one of the same name); its id."""
        self.ensure_image(spec.image)
        self.docker("rm", "-f", name)
        proc = self.docker(*run_command(name, self.owner, spec), env=spec.env)
        if proc.returncode != 0:
            raise ContainerError(f"The container could not be created: {proc.stderr.strip()}")
        return proc.stdout.strip()

    def state(self, name: str) -> tuple[bool, int | None]:
        """(running, exit code); (False, None) when there is no such container."""
        proc = self.docker("inspect", "--format", "{{.State.Running}} {{.State.ExitCode}}", name)
        if proc.returncode != 0:
            return False, None
        running, code = proc.stdout.split()
        return running == "true", int(code)

    def logs(self, name: str, tail: int = 30) -> str:
        proc = self.docker("logs", "--tail", str(tail), name)
        return (proc.stdout + proc.stderr).strip()

    def wait_ready(self, name: str, port: int, probe: Probe) -> None:
        """Return once the startup probe passes; raise ContainerError when the container exits or the
        probe's budget runs out (the message carries the container's last log lines)."""
        deadline = time.monotonic() + probe.budget
        while True:
            if _probe(port, probe):
                return
            running, code = self.state(name)
            if not running:
                raise ContainerError(f"The container exited with code {code}. Last log lines:\n"
                                     f"{self.logs(name)}")
            if time.monotonic() > deadline:
                raise ContainerError(f"The startup probe did not pass in {probe.budget:.0f} s. Last log "
                                     f"lines:\n{self.logs(name)}")
            time.sleep(PROBE_EVERY)

    def stop(self, container: str) -> None:
        """Graceful stop (SIGTERM, drain, SIGKILL after STOP_TIMEOUT), then remove. By id, not name: a
        revision started again meanwhile has the same name and must survive this."""
        self.docker("stop", "-t", str(STOP_TIMEOUT), container, timeout=STOP_TIMEOUT + 30)
        self.docker("rm", "-f", container)

    def kill(self, name: str) -> bool:
        """SIGKILL the container's process (a crash); the container stays, exited."""
        return self.docker("kill", name).returncode == 0

    def run_task(self, name: str, spec: Spec, timeout: float) -> tuple[int, str]:
        """Run one task to completion: (exit code, output). Past `timeout` it is killed: exit code 124."""
        self.ensure_image(spec.image)
        self.docker("rm", "-f", name)
        try:
            proc = self.docker(*task_command(name, self.owner, spec), env=spec.env, timeout=timeout)
        except subprocess.TimeoutExpired as expired:
            self.docker("rm", "-f", name)
            out = expired.stdout.decode() if isinstance(expired.stdout, bytes) else (expired.stdout or "")
            return 124, out + f"\n(fake: task killed after its timeout of {timeout:.0f} s)"
        return proc.returncode, proc.stdout + proc.stderr

    def remove_all(self) -> None:
        """Remove every container this fake started."""
        self._remove(self._owned(lambda owner: owner == self.owner))

    def remove_stale(self) -> None:
        """Remove containers left by fakes whose process is gone (a killed test run)."""
        self._remove(self._owned(lambda owner: owner != self.owner and not Path(f"/proc/{owner}").exists()))

    def _owned(self, keep) -> list[str]:
        proc = self.docker("ps", "-a", "--filter", f"label={OWNER}", "--format",
                           f'{{{{.ID}}}} {{{{.Label "{OWNER}"}}}}')
        rows = [line.split() for line in proc.stdout.splitlines() if len(line.split()) == 2]
        return [cid for cid, owner in rows if owner.isdigit() and keep(owner)]

    def _remove(self, ids: list[str]) -> None:
        if ids:
            self.docker("rm", "-f", *ids, timeout=120)


def _probe(port: int, probe: Probe) -> bool:
    if probe.path is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False
    try:
        with _DIRECT.open(f"http://127.0.0.1:{port}{probe.path}", timeout=3) as response:
            return 200 <= response.status < 400
    except urllib.error.HTTPError as error:
        return 200 <= error.code < 400
    except (OSError, ValueError):
        return False
