"""Run the sample app (examples/app) for real: Alembic, the create-user CLI, and uvicorn as a subprocess.

Plain helpers, no fixtures, so deploy and check tests can reuse them with their own scopes:

    url = postgres_server.create_database()
    migrate(url)                                    # alembic upgrade head
    create_user(url, "alice", "admin", "s3cret")    # python -m app.cli create-user
    app = AppProcess.start(app_env(url, redis_server.url))
    httpx.get(app.url + "/readyz")
    assert app.terminate() == 0                     # SIGTERM, drains, exits 0
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .services import free_port

APP_DIR = Path(__file__).resolve().parents[2] / "examples" / "app"


def _run(args: list[str], env: dict) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, *args], cwd=APP_DIR, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return proc


def alembic(database_url: str, *args: str) -> str:
    """Run `alembic ARGS` from the app directory against database_url; returns stdout+stderr."""
    proc = _run(["-m", "alembic", *args], {"DATABASE_URL": database_url})
    return proc.stdout + proc.stderr


def migrate(database_url: str, revision: str = "head") -> None:
    alembic(database_url, "upgrade", revision)


def create_user(database_url: str, username: str, role: str, password: str) -> str:
    """`python -m app.cli create-user`, password passed through APP_USER_PASSWORD; returns stdout."""
    return _run(["-m", "app.cli", "create-user", "--username", username, "--role", role],
                {"DATABASE_URL": database_url, "APP_USER_PASSWORD": password}).stdout


def app_env(database_url: str, redis_url: str, **extra: str) -> dict:
    """The contract's environment for one app process."""
    return {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "SECRET_KEY": "test-secret-key",
            "RELEASE_ID": "r-test", "GIT_SHA": "0123abc", **extra}


@dataclass
class AppProcess:
    """One uvicorn process serving app.main:app on a free loopback port, stdout collected as lines."""

    proc: subprocess.Popen
    port: int
    lines: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, env: dict, graceful_s: int = 20, wait: bool = True) -> "AppProcess":
        """Start the app exactly as the contract says; by default wait until /healthz answers."""
        port = free_port()
        cmd = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port),
               "--timeout-graceful-shutdown", str(graceful_s)]
        proc = subprocess.Popen(cmd, cwd=APP_DIR, env={**os.environ, "PORT": str(port), **env},
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        app = cls(proc, port)
        threading.Thread(target=app._collect, daemon=True).start()
        if wait:
            app.wait_healthy()
        return app

    def _collect(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_healthy(self, timeout: float = 20) -> None:
        self.wait_for(lambda: self._get_ok("/healthz"), timeout, "/healthz to answer 200")

    def wait_for(self, predicate, timeout: float, what: str) -> None:
        """Poll predicate() until true; on timeout raise with the app's output so far."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app exited {self.proc.returncode} waiting for {what}:\n{self.output}")
            if predicate():
                return
            time.sleep(0.1)
        raise TimeoutError(f"waited {timeout}s for {what}:\n{self.output}")

    def _get_ok(self, path: str) -> bool:
        try:
            return httpx.get(self.url + path, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def json_logs(self) -> list[dict]:
        """Every stdout line parsed as JSON (raises on the first line that is not)."""
        return [json.loads(line) for line in list(self.lines) if line.strip()]

    def mark(self) -> int:
        """A place in the output: pass it to request_line to see only what came after."""
        return len(self.lines)

    def request_line(self, path: str, since: int = 0) -> dict:
        """The last request log line for `path` printed after `since`, waiting up to 5 s for one.

        Tests share one server, so an earlier test's request to the same path must not count."""
        found: list[dict] = []

        def seen() -> bool:
            found[:] = [e for e in (json.loads(line) for line in list(self.lines)[since:] if line.strip())
                        if e.get("message") == "request" and e.get("path") == path]
            return bool(found)

        self.wait_for(seen, 5, f"a request log line for {path}")
        return found[-1]

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM, then wait for exit; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
