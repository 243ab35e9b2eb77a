"""Fixtures for the Node sample app (examples/node-app), run for real the way a deploy runs it.

Once per session: copy the app, `npm ci && npm run build` (the stack's build command), then make a
release the way the host does: the built tree without node_modules, plus `npm ci --omit=dev`. Every
test runs that release: `node dist/server.js`, the migrate and create-account commands through `sh -c`
with node_modules/.bin first on PATH, against the session PostgreSQL and Redis.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import threading
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.support.sample_app import AppProcess
from tests.support.services import free_port

APP_SRC = Path(__file__).resolve().parents[2] / "examples" / "node-app"
ROLES = ("admin", "member", "viewer")
PASSWORD = "correct horse battery staple"

# The stack-file commands, exactly as examples/node-app/README.md gives them.
BUILD = "npm ci && npm run build"
START = "node dist/server.js"
MIGRATE = "node-pg-migrate up -m migrations"
CREATE_ACCOUNT = ('APP_USER_PASSWORD="$ACCOUNT_PASSWORD" node dist/cli.js create-user '
                  '--username "$ACCOUNT_USERNAME" --role "$ACCOUNT_ROLE"')
NOT_SHIPPED = shutil.ignore_patterns("node_modules", "dist", "logs")


def sh(release: Path, command: str, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    """Run a stack command as the deploy does: `sh -c` in the release, node_modules/.bin first on PATH."""
    path = f"{release / 'node_modules' / '.bin'}:{os.environ['PATH']}"
    proc = subprocess.run(["sh", "-c", command], cwd=release, env={**os.environ, "PATH": path, **env},
                          capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{command} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return proc


def migrate(release: Path, database_url: str) -> str:
    """The stack's migrate command against database_url; returns its output."""
    return sh(release, MIGRATE, {"DATABASE_URL": database_url}).stdout


def create_account(release: Path, database_url: str, username: str, role: str, password: str,
                   check: bool = True) -> subprocess.CompletedProcess:
    """The stack's create_account command, given ACCOUNT_* as the deploy gives them."""
    return sh(release, CREATE_ACCOUNT, {"DATABASE_URL": database_url, "ACCOUNT_USERNAME": username,
                                        "ACCOUNT_ROLE": role, "ACCOUNT_PASSWORD": password}, check)


def node_env(database_url: str, redis_url: str, log_dir: Path | None, **extra: str) -> dict:
    """The contract's environment for one server process (log_dir None: APP_LOG_DIR left unset)."""
    env = {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "SECRET_KEY": "test-secret-key",
           "RELEASE_ID": "r-node", "GIT_SHA": "4567def", **extra}
    if log_dir is not None:
        env.setdefault("APP_LOG_DIR", str(log_dir))
    return env


class NodeApp(AppProcess):
    """`node dist/server.js` on a free loopback port; stdout and stderr collected as lines."""

    @classmethod
    def launch(cls, release: Path, env: dict, wait: bool = True) -> "NodeApp":
        port = free_port()
        base = {k: v for k, v in os.environ.items() if not k.startswith("APP_")}
        proc = subprocess.Popen(shlex.split(START), cwd=release, env={**base, "PORT": str(port), **env},
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        app = cls(proc, port)
        app.reader = threading.Thread(target=app._collect, daemon=True)
        app.reader.start()
        if wait:
            app.wait_healthy()
        return app

    def exit_output(self, timeout: float = 15) -> tuple[int, str]:
        """Wait for a process that is expected to stop by itself; its exit code and all its output."""
        code = self.proc.wait(timeout)
        self.reader.join(timeout)
        return code, self.output


def _npm(args: list[str], cwd: Path) -> None:
    proc = subprocess.run(["npm", *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"npm {' '.join(args)} exited {proc.returncode} in {cwd}:\n{proc.stdout}{proc.stderr}")


@pytest.fixture(scope="session")
def node_release(tmp_path_factory) -> Path:
    """A built release of examples/node-app with production dependencies only, as a host has it."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip("node and npm are not installed")
    root = tmp_path_factory.mktemp("node-app")
    build, release = root / "build", root / "release"
    shutil.copytree(APP_SRC, build, ignore=NOT_SHIPPED)
    _npm(["ci"], build)
    _npm(["run", "build"], build)
    shutil.copytree(build, release, ignore=shutil.ignore_patterns("node_modules"))
    _npm(["ci", "--omit=dev"], release)
    return release


@pytest.fixture(scope="session")
def node_database(node_release, postgres_server) -> str:
    """A migrated database with one user per role (username == role, password PASSWORD)."""
    url = postgres_server.create_database("node_app")
    migrate(node_release, url)
    for role in ROLES:
        create_account(node_release, url, role, role, PASSWORD)
    return url


@pytest.fixture(scope="session")
def running_node_app(node_release, node_database, redis_server, tmp_path_factory):
    """One server shared by the read-only tests."""
    app = NodeApp.launch(node_release, node_env(node_database, redis_server.url,
                                                tmp_path_factory.mktemp("shared-logs")))
    yield app
    app.terminate()


@pytest.fixture
def start_node_app(node_release, node_database, redis_server, tmp_path):
    """Factory: start a server with environment overrides; every one started is stopped afterwards."""
    started: list[NodeApp] = []

    def start(database_url: str | None = None, wait: bool = True, **env: str) -> NodeApp:
        app = NodeApp.launch(node_release, node_env(database_url or node_database, redis_server.url,
                                                    tmp_path / f"logs{len(started)}", **env), wait)
        started.append(app)
        return app

    yield start
    for app in started:
        app.terminate()


@contextmanager
def signed_in(app: AppProcess, username: str, password: str = PASSWORD):
    """An httpx client holding a session cookie for `username`."""
    with httpx.Client(base_url=app.url, timeout=10) as client:
        response = client.post("/login", json={"username": username, "password": password})
        assert response.status_code == 200, response.text
        yield client
