"""Real Docker engines for tests: Debian's dockerd started by hand (no systemd here), on private sockets.

A pytest plugin (registered in tests/conftest.py). Session-scoped fixtures, each one engine for the
whole run (the guide: one dockerd, one cached base image):

    docker_host     Dockerd: the engine on the "host" the docker stacks deploy to
    docker_build    Dockerd: the engine `fab build` uses, the developer's own (a second one, so image
                    shipping really moves layers from one image store to another)

    def test_something(docker_host):
        docker_host.cli("ps", "-a")                     # CompletedProcess; raises with output on failure
        docker_host.env                                 # {"DOCKER_HOST": "unix:///..."} for subprocesses

Each engine keeps its data root under /var/lib/shipshape-test/ across runs, so an image built once
(the base image, a sample app's dependency layers) is not built again by the next run. Engines are
started with no bridge and no iptables rules (containers use the host's network, as shipshape's
docker runtime does), and are stopped at the end of the session.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

STATE = Path(os.environ.get("SHIPSHAPE_TEST_DOCKER", "/var/lib/shipshape-test"))


@dataclass
class Dockerd:
    name: str
    root: Path = STATE
    started: bool = False   # by this session: only then does stop() stop it

    @property
    def socket(self) -> str:
        return f"/run/shipshape-test/{self.name}.sock"

    @property
    def data_root(self) -> Path:
        return self.root / self.name

    @property
    def pidfile(self) -> Path:
        return Path(f"/run/shipshape-test/{self.name}.pid")

    @property
    def logfile(self) -> Path:
        return self.root / f"{self.name}.log"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def env(self) -> dict[str, str]:
        return {"DOCKER_HOST": self.host}

    def command(self) -> list[str]:
        return ["dockerd", "--host", self.host, "--data-root", str(self.data_root),
                "--exec-root", f"/run/shipshape-test/{self.name}-exec", "--pidfile", str(self.pidfile),
                "--bridge", "none", "--iptables=false", "--ip-masq=false"]

    def answers(self) -> bool:
        return subprocess.run(["docker", "-H", self.host, "version", "--format", "{{.Server.Version}}"],
                              capture_output=True, timeout=10).returncode == 0

    def start(self) -> None:
        """Start the engine (or adopt one already answering: a parallel session's, or one a killed run
        left) and wait for it."""
        if self.answers():
            return
        self.started = True
        Path("/run/shipshape-test").mkdir(parents=True, exist_ok=True)
        self.data_root.mkdir(parents=True, exist_ok=True)
        self.pidfile.unlink(missing_ok=True)
        with open(self.logfile, "ab") as log:
            subprocess.Popen(self.command(), stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.answers():
                return
            time.sleep(0.2)
        raise RuntimeError(f"dockerd {self.name} did not answer on {self.socket} in 30 s:\n"
                           + self.logfile.read_text()[-3000:])

    def stop(self) -> None:
        """SIGTERM the engine if this session started it (its containers stop with it) and wait for it."""
        if not self.started:
            return  # another session's (a parallel run adopted it): leave it to that one
        try:
            pid = int(self.pidfile.read_text())
        except (FileNotFoundError, ValueError):
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                break
            time.sleep(0.1)

    def cli(self, *args: str, input: bytes | str | None = None, check: bool = True,
            timeout: float = 600) -> subprocess.CompletedProcess:
        proc = subprocess.run(["docker", "-H", self.host, *args], input=input, capture_output=True,
                              text=not isinstance(input, bytes), timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
        return proc


def _engine(name: str):
    if shutil.which("dockerd") is None or shutil.which("docker") is None:
        pytest.skip("not installed: dockerd/docker (apt-get install -y docker.io)")
    engine = Dockerd(name)
    engine.start()
    return engine


@pytest.fixture(scope="session")
def docker_host():
    """The engine on the host docker stacks deploy to (see Dockerd)."""
    engine = _engine("host")
    yield engine
    engine.stop()


@pytest.fixture(scope="session")
def docker_build():
    """The local engine `fab build` builds images with (see Dockerd)."""
    engine = _engine("build")
    yield engine
    engine.stop()


@pytest.fixture(scope="session")
def docker_cloudrun():
    """The engine the Cloud Run fake (tests/support/fake_gcp) runs revisions and job executions on."""
    engine = _engine("cloudrun")
    yield engine
    engine.stop()
