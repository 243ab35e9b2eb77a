"""End-to-end fixtures: the real local stack (sshd, nginx, PostgreSQL, Redis, PM2 on loopback).

`local_stack` (session) runs scripts/local-host.sh and `fab setup` against a throwaway project root
($SHIPSHAPE_ROOT): a copy of Pulumi.local.yaml with short canary bakes and `app.repo` pointing at a
clone of this repository, so tests make new app versions as real commits without touching the repo.
Reuse it from other suites: `def test_x(local_stack): local_stack.fab("deploy")`.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
FAB = REPO / ".venv" / "bin" / "fab"
# SHIPSHAPE_E2E_SHIFT=N moves every test stack below to ports + N*10000 and roots/users suffixed _sN, so a
# second checkout (another engineer's worktree, a helper) can run these suites at the same time as this one.
SHIFT = int(os.environ.get("SHIPSHAPE_E2E_SHIFT", "0") or 0)


def _shifted(ports: dict) -> dict:
    if not SHIFT:
        return ports
    return {key: (value + SHIFT * 10000 if isinstance(value, int) else f"{value}_s{SHIFT}")
            for key, value in ports.items()}


# The e2e stack lives beside the real local stack on this host (own root, user, ports, daemons), so
# other suites using /srv/shipshape at the same time do not disturb it, nor it them.
E2E = _shifted({"root": "/srv/shipshape_e2e", "app_user": "shipshape_e2e", "http_port": 8180, "app_port": 8101,
       "db_port": 5434, "redis_port": 6381})
ROOT = E2E["root"]
SITE = f"http://127.0.0.1:{E2E['http_port']}"


# The Node sample's stack: another root, user, ports and daemons on the same host.
NODE = _shifted({"root": "/srv/shipshape_node", "app_user": "shipshape_node", "http_port": 8380, "app_port": 8301,
        "db_port": 5436, "redis_port": 6383})
NODE_APP = {"name": "nodesample", "repo": "examples/node-app", "kind": "node", "build": "npm ci && npm run build",
            "start": "node dist/server.js", "migrate": "node-pg-migrate up -m migrations",
            "create_account": 'APP_USER_PASSWORD="$ACCOUNT_PASSWORD" node dist/cli.js create-user '
                              '--username "$ACCOUNT_USERNAME" --role "$ACCOUNT_ROLE"',
            "shared_dirs": ["logs"], "env": {"NODE_ENV": "production"}}
# Its public/ as shipshape:app.static, under a prefix the app itself does not answer.
NODE_STATIC = {"dir": "public", "url": "/assets/"}


@dataclass
class LocalStack:
    root: Path          # the throwaway project root
    clone: Path         # a git clone of this repository; its `app` directory is what ships
    outputs: list = field(default_factory=list)  # every fab output, for the secrets test
    app: str = "examples/app"
    site: str = SITE
    extra_env: dict = field(default_factory=dict)  # e.g. DOCKER_HOST of the local build engine

    def http(self, path: str, timeout: float = 5) -> tuple[int, str]:
        return http(path, timeout, self.site)

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
        return {**os.environ, "SHIPSHAPE_ROOT": str(self.root), **self.extra_env}

    def commit(self, message: str, files: dict | None = None, remove: tuple = ()) -> str:
        """Commit a new app version in the clone; returns its sha."""
        app = self.clone / self.app
        for name, text in (files or {}).items():
            (app / name).parent.mkdir(parents=True, exist_ok=True)
            (app / name).write_text(text)
        for name in remove:
            (app / name).unlink(missing_ok=True)
        git = ["git", "-C", str(self.clone), "-c", "user.name=e2e", "-c", "user.email=e2e@localhost"]
        subprocess.run([*git, "add", "-A", self.app], check=True)
        subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", message], check=True)
        return subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()


def http(path: str, timeout: float = 5, site: str = SITE) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(site + path, timeout=timeout) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


class Load:
    """GETs through nginx from one thread for the length of a `with` block (bounded in time)."""

    def __init__(self, path: str = "/version", limit_s: float = 120, get=None):
        self.path, self.limit_s, self.get, self.results = path, limit_s, get or http, []
        self._stop = threading.Event()

    def __enter__(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        deadline = time.monotonic() + self.limit_s
        while not self._stop.is_set() and time.monotonic() < deadline:
            self.results.append(self.get(self.path))
            time.sleep(0.02)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def shas(self) -> set:
        return {json.loads(body).get("git_sha") for status, body in self.results if status == 200}


def deploy_killed_at(stack: "LocalStack", marker: str) -> str:
    """`fab deploy`, SIGKILLed 0.3 s after `marker` appears in its output; returns what it printed."""
    proc = stack.popen("deploy")
    seen = ""
    for line in proc.stdout:
        seen += line
        if marker in line:
            time.sleep(0.3)
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=30)
    stack.outputs.append(seen)
    assert marker in seen, seen
    return seen


def host_sh(script: str) -> str:
    """Run a shell snippet on this machine (the local stack's host) for assertions."""
    return subprocess.run(["bash", "-c", script], check=True, capture_output=True, text=True).stdout


def _stack_file(root: Path, clone: Path, ports: dict, app: dict | None = None, extra: dict | None = None) -> None:
    document = yaml.safe_load((REPO / "Pulumi.local.yaml").read_text())
    config = document["config"]
    config.update(extra or {})
    if app:
        config["shipshape:app"] = dict(app)
    repo = config["shipshape:app"].get("repo", "examples/app")
    config["shipshape:app"].update({"repo": str(clone / repo), "port": ports["app_port"]})
    config["shipshape:host"].update({"root": ports["root"], "app_user": ports["app_user"],
                                     "http_port": ports["http_port"]})
    config["shipshape:database"]["port"] = ports["db_port"]
    config["shipshape:redis"]["port"] = ports["redis_port"]
    # probes at 200/s: a test deploy without load reaches the gate's sample in well under a second
    config["shipshape:canary"].update({"interval": 0.5, "readiness_timeout": 8, "probe_rate": 200})
    (root / "Pulumi.local.yaml").write_text(yaml.safe_dump(document))
    (root / "Pulumi.yaml").write_text((REPO / "Pulumi.yaml").read_text())


def _provisioned(tmp_path_factory, ports: dict, app: dict | None = None, extra: dict | None = None,
                 env: dict | None = None) -> LocalStack:
    """A throwaway project root with a clone to commit in, its stack file, and `fab setup` run."""
    subprocess.run([str(REPO / "scripts" / "local-host.sh")], check=True, capture_output=True)
    root = tmp_path_factory.mktemp("project")
    clone = root / "repo"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    (root / ".local").symlink_to(REPO / ".local")  # the SSH key and known_hosts of local-host.sh
    _stack_file(root, clone, ports, app, extra)
    stack = LocalStack(root, clone, app=(app or {}).get("repo", "examples/app"),
                       site=f"http://127.0.0.1:{ports['http_port']}", extra_env=env or {})
    stack.first_setup = stack.fab("setup")
    return stack


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory) -> LocalStack:
    return _provisioned(tmp_path_factory, E2E)


@pytest.fixture(scope="session")
def node_stack(tmp_path_factory) -> LocalStack:
    """The Node + TypeScript sample (examples/node-app) on a stack of its own (NODE ports), its public/
    served by nginx at /assets/."""
    return _provisioned(tmp_path_factory, NODE, {**NODE_APP, "static": NODE_STATIC})


# The docker runtime's stacks: the samples as containers on the fixtures' host engine, built with the
# build engine (two image stores, so shipping really moves layers).
DOCKER = _shifted({"root": "/srv/shipshape_docker", "app_user": "shipshape_dk", "http_port": 8480, "app_port": 8401,
          "db_port": 5437, "redis_port": 6384})
DOCKER_NODE = _shifted({"root": "/srv/shipshape_dnode", "app_user": "shipshape_dn", "http_port": 8580, "app_port": 8501,
               "db_port": 5438, "redis_port": 6385})


def _docker_extra(docker_host) -> dict:
    return {"shipshape:runtime": "docker", "shipshape:docker": {"socket": docker_host.socket, "stop_timeout": 25}}


@pytest.fixture(scope="session")
def docker_stack(tmp_path_factory, docker_host, docker_build, base_image) -> LocalStack:
    """The Python sample as containers (examples/app/Dockerfile) on a stack of its own (DOCKER ports)."""
    app = {"name": "dsample", "repo": "examples/app",
           "create_account": yaml.safe_load((REPO / "Pulumi.local.yaml").read_text())
           ["config"]["shipshape:app"]["create_account"]}
    return _provisioned(tmp_path_factory, DOCKER, app, _docker_extra(docker_host), docker_build.env)


@pytest.fixture(scope="session")
def docker_node_stack(tmp_path_factory, docker_host, docker_build, base_image) -> LocalStack:
    """The Node sample as containers (examples/node-app/Dockerfile: its build runs inside the image)."""
    app = {**NODE_APP, "name": "dnode", "build": ""}
    return _provisioned(tmp_path_factory, DOCKER_NODE, app, _docker_extra(docker_host), docker_build.env)


def wait_for(predicate, timeout: float = 30, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")
