"""Real PostgreSQL 15 and Redis 7 for tests, on loopback, on free ports, in temporary directories.

A pytest plugin (registered in tests/conftest.py). Session-scoped fixtures:

    postgres_server   PostgresServer: host, port, admin_url, create_database(), stop(), start()
    redis_server      RedisServer: host, port, password, url, cli(), stop(), start()

Example:

    def test_something(postgres_server, redis_server):
        url = postgres_server.create_database("shop")   # postgresql://shop:PW@127.0.0.1:PORT/shop
        redis_server.cli("PING")                         # "PONG"

The fixtures skip (with the reason) only when the binaries are absent; any other failure to start
is an error, so a broken machine never looks like a passing suite.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PG_BIN = Path(os.environ.get("SHIPSHAPE_PG_BIN", "/usr/lib/postgresql/15/bin"))
HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port that was free on loopback a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a command, raising with its output on failure (so the reason reaches the test report)."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kwargs)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return proc


def _as_postgres(cmd: list[str]) -> list[str]:
    # postgres refuses to run as root; as any other user it runs as that user.
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@dataclass
class PostgresServer:
    """A private PostgreSQL cluster: unix-socket admin access by trust, TCP by password (scram)."""

    root: Path
    port: int = field(default_factory=free_port)
    host: str = HOST
    admin_password: str = field(default_factory=lambda: secrets.token_hex(12))

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def sockdir(self) -> Path:
        return self.root / "sock"

    @property
    def logfile(self) -> Path:
        return self.root / "postgres.log"

    @property
    def admin_url(self) -> str:
        """Superuser URL over TCP (password auth), e.g. for pg_dump."""
        return f"postgresql://postgres:{self.admin_password}@{self.host}:{self.port}/postgres"

    def init(self) -> None:
        self.sockdir.mkdir(parents=True)
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.admin_password + "\n")
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.sockdir, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
        _run(_as_postgres([str(PG_BIN / "initdb"), "-D", str(self.datadir), "-U", "postgres",
                           "--auth-local=trust", "--auth-host=scram-sha-256",
                           f"--pwfile={pwfile}", "--no-sync"]))
        pwfile.unlink()

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        opts = f"-p {self.port} -k {self.sockdir} -c listen_addresses={self.host} -c fsync=off"
        try:
            _run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.logfile),
                               "-o", opts, "-w", "-t", "30", "start"]))
        except RuntimeError as exc:
            log = self.logfile.read_text() if self.logfile.exists() else ""
            raise RuntimeError(f"{exc}\npostgres.log:\n{log}") from None

    def stop(self) -> None:
        """Stop the server (fast mode: running sessions are disconnected)."""
        _run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop"]))

    @property
    def running(self) -> bool:
        proc = subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.datadir), "status"]),
                              capture_output=True)
        return proc.returncode == 0

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run SQL as the superuser over the unix socket; returns unaligned, tuples-only output."""
        cmd = [str(PG_BIN / "psql"), "-h", str(self.sockdir), "-p", str(self.port), "-U", "postgres",
               "-d", dbname, "-v", "ON_ERROR_STOP=1", "-X", "-A", "-t", "-c", sql]
        return _run(cmd).stdout.strip()

    def create_database(self, name: str | None = None, password: str | None = None) -> str:
        """Create a role and a database it owns (both named `name`); return its postgresql:// URL."""
        name = name or f"db_{secrets.token_hex(4)}"
        password = password or secrets.token_hex(12)
        self.psql(f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{password}'")
        self.psql(f"CREATE DATABASE \"{name}\" OWNER \"{name}\"")
        return f"postgresql://{name}:{password}@{self.host}:{self.port}/{name}"


@dataclass
class RedisServer:
    """A private Redis with a password, bound to loopback."""

    root: Path
    port: int = field(default_factory=free_port)
    host: str = HOST
    password: str = field(default_factory=lambda: secrets.token_hex(12))

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@{self.host}:{self.port}/0"

    @property
    def pidfile(self) -> Path:
        return self.root / "redis.pid"

    def start(self) -> None:
        """Start the server (daemonized) and wait until it answers PING."""
        _run(["redis-server", "--port", str(self.port), "--bind", self.host, "--daemonize", "yes",
              "--dir", str(self.root), "--pidfile", str(self.pidfile), "--requirepass", self.password,
              "--logfile", str(self.root / "redis.log"), "--save", ""])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._ping():
                return
            time.sleep(0.05)
        raise RuntimeError(f"redis did not answer on port {self.port}:\n"
                           f"{(self.root / 'redis.log').read_text()}")

    def stop(self) -> None:
        """Stop the server and wait for the process to exit."""
        pid = int(self.pidfile.read_text())
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.05)
        raise RuntimeError(f"redis pid {pid} did not exit")

    def cli(self, *args: str) -> str:
        """Run one redis-cli command (authenticated); returns its output."""
        env = {**os.environ, "REDISCLI_AUTH": self.password}  # keeps the password out of argv
        return _run(["redis-cli", "-h", self.host, "-p", str(self.port), *args], env=env).stdout.strip()

    def _ping(self) -> bool:
        try:
            return self.cli("PING") == "PONG"
        except RuntimeError:
            return False


def _alive(pid: int) -> bool:
    # A daemon is re-parented to PID 1, which on this machine reaps slowly (~2 s): count a zombie as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _require_binaries(*paths: str) -> None:
    missing = [p for p in paths if shutil.which(p) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (apt-get install -y postgresql redis-server)")


@pytest.fixture(scope="session")
def postgres_server():
    """A running PostgreSQL 15 on a free loopback port; see PostgresServer."""
    _require_binaries(str(PG_BIN / "initdb"), str(PG_BIN / "pg_ctl"), str(PG_BIN / "psql"))
    # Not pytest's tmp dir: its parents are root-only (0700), which the postgres user cannot traverse.
    server = PostgresServer(Path(tempfile.mkdtemp(prefix="shipshape-pg-")))
    try:
        server.init()
        server.start()
        yield server
    finally:
        if server.running:
            server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server():
    """A running Redis 7 with a password on a free loopback port; see RedisServer."""
    _require_binaries("redis-server", "redis-cli")
    server = RedisServer(Path(tempfile.mkdtemp(prefix="shipshape-redis-")))
    try:
        server.start()
        yield server
    finally:
        if server.pidfile.exists():
            server.stop()
        shutil.rmtree(server.root, ignore_errors=True)
