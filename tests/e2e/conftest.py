"""End-to-end fixtures: the real local stack (sshd, nginx, PostgreSQL, Redis, PM2 on loopback).

`local_stack` (session) runs scripts/local-host.sh and `fab setup` against a throwaway project root
($SHIPSHAPE_ROOT): a copy of Pulumi.local.yaml with short canary bakes and `app.repo` pointing at a
clone of this repository, so tests make new app versions as real commits without touching the repo.
Reuse it from other suites: `def test_x(local_stack): local_stack.fab("deploy")`.
"""
from __future__ import annotations

import os
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
FAB = REPO / ".venv" / "bin" / "fab"
# The e2e stack lives beside the real local stack on this host (own root, user, ports, daemons), so
# other suites using /srv/shipshape at the same time do not disturb it, nor it them.
E2E = {"root": "/srv/shipshape_e2e", "app_user": "shipshape_e2e", "http_port": 8180, "app_port": 8101,
       "db_port": 5434, "redis_port": 6381}
ROOT = E2E["root"]
SITE = f"http://127.0.0.1:{E2E['http_port']}"


@dataclass
class LocalStack:
    root: Path          # the throwaway project root
    clone: Path         # a git clone of this repository; its examples/app is what ships
    outputs: list = field(default_factory=list)  # every fab output, for the secrets test

    def fab(self, *args: str, check: bool = True, timeout: float = 240) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(FAB), *args], cwd=REPO, env=self.env(), capture_output=True, text=True,
                              timeout=timeout)
        self.outputs.append(proc.stdout + proc.stderr)
        if check and proc.returncode != 0:
            raise AssertionError(f"fab {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
        return proc

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([str(FAB), *args], cwd=REPO, env=self.env(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    def env(self) -> dict:
        return {**os.environ, "SHIPSHAPE_ROOT": str(self.root)}

    def commit(self, message: str, files: dict | None = None, remove: tuple = ()) -> str:
        """Commit a new app version in the clone; returns its sha."""
        app = self.clone / "examples" / "app"
        for name, text in (files or {}).items():
            (app / name).parent.mkdir(parents=True, exist_ok=True)
            (app / name).write_text(text)
        for name in remove:
            (app / name).unlink(missing_ok=True)
        git = ["git", "-C", str(self.clone), "-c", "user.name=e2e", "-c", "user.email=e2e@localhost"]
        subprocess.run([*git, "add", "-A", "examples/app"], check=True)
        subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", message], check=True)
        return subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()


def http(path: str, timeout: float = 5) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(SITE + path, timeout=timeout) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def host_sh(script: str) -> str:
    """Run a shell snippet on this machine (the local stack's host) for assertions."""
    return subprocess.run(["bash", "-c", script], check=True, capture_output=True, text=True).stdout


def _stack_file(root: Path, clone: Path) -> None:
    document = yaml.safe_load((REPO / "Pulumi.local.yaml").read_text())
    config = document["config"]
    config["shipshape:app"].update({"repo": str(clone / "examples" / "app"), "port": E2E["app_port"]})
    config["shipshape:host"].update({"root": ROOT, "app_user": E2E["app_user"], "http_port": E2E["http_port"]})
    config["shipshape:database"]["port"] = E2E["db_port"]
    config["shipshape:redis"]["port"] = E2E["redis_port"]
    config["shipshape:canary"].update({"interval": 0.5, "readiness_timeout": 8})
    (root / "Pulumi.local.yaml").write_text(yaml.safe_dump(document))
    (root / "Pulumi.yaml").write_text((REPO / "Pulumi.yaml").read_text())


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory) -> LocalStack:
    subprocess.run([str(REPO / "scripts" / "local-host.sh")], check=True, capture_output=True)
    root = tmp_path_factory.mktemp("project")
    clone = root / "repo"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    (root / ".local").symlink_to(REPO / ".local")  # the SSH key and known_hosts of local-host.sh
    _stack_file(root, clone)
    stack = LocalStack(root, clone)
    stack.first_setup = stack.fab("setup")
    return stack


def wait_for(predicate, timeout: float = 30, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")
