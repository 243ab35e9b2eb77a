"""Fixtures for the image tests: the sample images of tests/support/images.py, run as the deploy runs them.

`sample` (session, parametrized python/node): one sample app's image with its own database, the
stack's env file (secrets included, mode 600) and its stack commands. `containers` (per test): starts
containers on docker_build the way shipshape's docker runtime does (host network, a non-root uid that
exists nowhere in the image, secrets from an env file, shared dirs mounted under /app), plus a
read-only root filesystem to prove nothing else is written; every container it started is removed at
teardown, whether the test passed or not.
"""
from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.dockerd import Dockerd
from tests.support.images import SampleImage
from tests.support.services import free_port

UID = 4321  # no user of that id in either image: any uid:gid the runtime passes must work


@dataclass(frozen=True)
class Sample:
    name: str
    image: SampleImage
    env_file: Path
    secrets: tuple[str, ...]        # values that exist only at run time, never in the image
    migrate: tuple[str, ...]        # the stack's migrate command, run in the image
    shared_dirs: tuple[str, ...]    # what the runtime mounts under /app (the only writable places)
    stopped: str                    # what the app logs once SIGTERM has drained it


SAMPLES = {
    "python": dict(migrate=("alembic", "upgrade", "head"), shared_dirs=(),
                   stopped="Finished server process", env={"UVICORN_HOST": "127.0.0.1"}),
    "node": dict(migrate=("node-pg-migrate", "up", "-m", "migrations"), shared_dirs=("logs",),
                 stopped="shutdown complete", env={}),
}


@pytest.fixture(scope="session", params=sorted(SAMPLES))
def sample(request, postgres_server, redis_server, tmp_path_factory) -> Sample:
    spec = SAMPLES[request.param]
    database_url = postgres_server.create_database(f"docker_{request.param}")
    env = {"DATABASE_URL": database_url, "REDIS_URL": redis_server.url, "SECRET_KEY": secrets.token_hex(24),
           "RELEASE_ID": f"r-docker-{request.param}", "GIT_SHA": "89abcde", **spec["env"]}
    env_file = tmp_path_factory.mktemp(f"env-{request.param}") / ".docker.env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
    env_file.chmod(0o600)
    return Sample(request.param, request.getfixturevalue(f"{request.param}_app_image"), env_file,
                  (env["SECRET_KEY"], urlsplit(database_url).password, redis_server.password),
                  spec["migrate"], spec["shared_dirs"], spec["stopped"])


@dataclass
class Container:
    engine: Dockerd
    name: str
    port: int
    shared: dict[str, Path] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        proc = self.engine.cli("logs", self.name, check=False)
        return proc.stdout + proc.stderr

    def state(self) -> dict:
        return json.loads(self.engine.cli("inspect", "--format", "{{json .State}}", self.name).stdout)

    def wait_healthy(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state()
            if not state["Running"]:
                raise AssertionError(f"{self.name} exited {state['ExitCode']}:\n{self.logs()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.name}: no 200 from /healthz in {timeout}s:\n{self.logs()}")


class Containers:
    """Containers of sample images on one engine, run as the docker runtime runs them."""

    def __init__(self, engine: Dockerd, tmp: Path):
        self.engine, self.tmp, self.names = engine, tmp, []

    def _args(self, sample: Sample, mounts: dict[str, Path]) -> list[str]:
        name = f"shipshape-test-{sample.name}-{secrets.token_hex(4)}"
        self.names.append(name)
        volumes = [arg for dir_, path in mounts.items() for arg in ("--volume", f"{path}:/app/{dir_}")]
        return ["--name", name, "--network", "host", "--user", f"{UID}:{UID}", "--read-only",
                "--tmpfs", "/tmp", "--env-file", str(sample.env_file), *volumes]

    def once(self, sample: Sample, *command: str):
        """`docker run --rm` of one command (migrate, say); the CompletedProcess, not checked."""
        return self.engine.cli("run", "--rm", *self._args(sample, {}), sample.image.tag, *command,
                               check=False, timeout=120)

    def start(self, sample: Sample) -> Container:
        """The image's own CMD, detached, on a free loopback port; returns once /healthz answers."""
        shared = {}
        for dir_ in sample.shared_dirs:
            shared[dir_] = self.tmp / f"{dir_}-{len(self.names)}"
            shared[dir_].mkdir()
            os.chown(shared[dir_], UID, UID)
        port = free_port()
        args = self._args(sample, shared)
        self.engine.cli("run", "--detach", *args, "--env", f"PORT={port}", sample.image.tag)
        container = Container(self.engine, self.names[-1], port, shared)
        container.wait_healthy()
        return container

    def remove_all(self) -> None:
        for name in self.names:
            self.engine.cli("rm", "--force", "--volumes", name, check=False)


@pytest.fixture
def containers(docker_build, tmp_path):
    started = Containers(docker_build, tmp_path)
    try:
        yield started
    finally:
        started.remove_all()
