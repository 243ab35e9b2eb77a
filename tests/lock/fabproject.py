"""Run `fab` as a user does, against a throwaway project whose stack `t` targets this machine's sshd.

Shared by the task tests in tests/lock and tests/backup.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from shipshape.stackfile import find_root

ROOT = find_root()


def write_project(project: Path, host_root: Path, database: dict | None = None) -> None:
    """A project root with stack `t` whose host is this machine's sshd and whose layout is `host_root`."""
    shutil.copy(ROOT / "Pulumi.yaml", project / "Pulumi.yaml")
    (project / ".local" / "ssh").mkdir(parents=True)
    shutil.copy(ROOT / ".local" / "ssh" / "known_hosts", project / ".local" / "ssh" / "known_hosts")
    config = {"shipshape:host": {"address": "127.0.0.1", "port": 2222, "user": "root",
                                 "key": str(ROOT / ".local" / "ssh" / "id_ed25519"), "root": str(host_root)}}
    if database:
        config["shipshape:database"] = database
    (project / "Pulumi.t.yaml").write_text(json.dumps({"config": config}))  # JSON is YAML


def fab(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SHIPSHAPE_ROOT": str(project), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "fabric", *args, "--stack", "t"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def sshd():
    subprocess.run([str(ROOT / "scripts" / "local-host.sh")], check=True, capture_output=True)


@pytest.fixture
def project(sshd):
    base = Path(tempfile.mkdtemp(prefix="shipshape-tasks-"))
    (base / "project").mkdir()
    write_project(base / "project", base / "host")
    yield base / "project", base / "host"
    shutil.rmtree(base, ignore_errors=True)
