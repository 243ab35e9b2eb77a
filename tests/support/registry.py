"""A real image registry on loopback: Debian's `docker-registry` (the CNCF distribution server), by hand.

A pytest plugin (registered in tests/conftest.py). Session fixture:

    registry    Registry: `address` ("127.0.0.1:PORT"), `repository(project, app)` -> the path a
                Cloud Run stack's `shipshape:gcp.registry` names, `tags(repo)`, `manifest_digest(ref)`

Docker engines treat registries on 127.0.0.0/8 as insecure (plain HTTP) without configuration, so
`docker push 127.0.0.1:PORT/...` works from every test engine. No authentication is configured: the
engine never sends the credentials `fab deploy` prepares for Artifact Registry, as it only answers a
challenge. Storage is a temporary directory, gone with the session.
"""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.services import free_port

BINARY = "/usr/bin/docker-registry"
CONFIG = """version: 0.1
log: {{level: warn}}
storage:
  filesystem: {{rootdirectory: {root}}}
  delete: {{enabled: true}}
http: {{addr: "127.0.0.1:{port}"}}
"""


@dataclass
class Registry:
    port: int
    root: Path
    process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def repository(self, project: str, app: str) -> str:
        """Where a stack's images go, shaped like Artifact Registry's REGION-docker.pkg.dev/PROJECT/REPO."""
        return f"{self.address}/{project}/{app}"

    def _get(self, path: str, accept: str = "application/json") -> urllib.request.addinfourl:
        request = urllib.request.Request(f"http://{self.address}{path}", headers={"Accept": accept})
        return urllib.request.urlopen(request, timeout=10)

    def tags(self, repo: str) -> list[str]:
        """Tags of `repo` (path after the address, e.g. "proj/app/app")."""
        try:
            with self._get(f"/v2/{repo}/tags/list") as response:
                return sorted(json.load(response).get("tags") or [])
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return []
            raise

    def manifest_digest(self, repo: str, reference: str) -> str:
        accept = "application/vnd.docker.distribution.manifest.v2+json"
        with self._get(f"/v2/{repo}/manifests/{reference}", accept) as response:
            return response.headers["Docker-Content-Digest"]

    def start(self) -> None:
        config = self.root / "config.yml"
        config.write_text(CONFIG.format(root=self.root / "data", port=self.port))
        self.process = subprocess.Popen([BINARY, "serve", str(config)], stdout=subprocess.DEVNULL,
                                        stderr=open(self.root / "registry.log", "wb"), start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with self._get("/v2/"):
                    return
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.1)
        raise RuntimeError(f"docker-registry did not answer on {self.address}:\n"
                           + (self.root / "registry.log").read_text()[-2000:])

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture(scope="session")
def registry():
    """Debian's docker-registry on a free loopback port, storage in a temporary directory."""
    if not Path(BINARY).exists():
        pytest.skip(f"not installed: {BINARY} (apt-get install -y docker-registry)")
    root = Path(tempfile.mkdtemp(prefix="shipshape-registry-"))
    server = Registry(free_port(), root)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)
