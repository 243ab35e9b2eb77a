"""`fab lock`, `fab unlock`, `fab releases` as a user runs them: over the real sshd, on a throwaway host root."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from shipshape.history import Entry, to_json
from tests.lock.fabproject import fab, project, sshd  # noqa: F401  (fixtures)


def plant_lock(host: Path, pid: int) -> None:
    (host / "state").mkdir(parents=True, exist_ok=True)
    owner = {"who": f"alice@{socket.gethostname()}", "pid": pid, "task": "fab deploy", "started": time.time()}
    (host / "state" / "lock").write_text(json.dumps(owner) + "\n")


def test_unlock_removes_a_stale_lock(project):
    project, host = project
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    plant_lock(host, dead.pid)
    shown = fab(project, "lock")
    assert f"locked by alice@{socket.gethostname()} (fab deploy, pid {dead.pid})" in shown.stdout
    assert "looks stale" in shown.stdout
    assert fab(project, "unlock").returncode == 0
    assert not (host / "state" / "lock").exists()
    assert "stack t is not locked" in fab(project, "lock").stdout


def test_unlock_refuses_a_live_lock_without_force(project):
    project, host = project
    plant_lock(host, os.getpid())  # this test's own process: alive, and the lock is fresh
    refused = fab(project, "unlock")
    assert refused.returncode == 1 and "pass --force" in refused.stderr
    assert (host / "state" / "lock").exists()
    assert fab(project, "unlock", "--force").returncode == 0
    assert not (host / "state" / "lock").exists()


def test_releases_shows_the_last_deploys_and_dora(project):
    project, host = project
    (host / "state").mkdir(parents=True)
    lines = [to_json(Entry(f"2026112112{i:04d}-abc", "abcdef1234567890", "alice@laptop", 1e9 + i * 3600,
                           1e9 + i * 3600 + 42, "failed" if i == 3 else "success", step="canary" if i == 3 else None,
                           committed=1e9 + i * 3600 - 600)) for i in range(12)]
    (host / "state" / "history.jsonl").write_text("\n".join(lines) + "\n")
    out = fab(project, "releases").stdout
    assert "202611211200" + "11-abc" in out and "20261121120001-abc" not in out  # the last 10 only
    assert "failed at canary" in out and "abcdef123456" in out and "42s" in out
    assert "change failure rate" in out and "lead time" in out


def test_releases_report_writes_markdown_and_png_of_a_release(project):
    from tests.report.samples import SUCCESS

    project, host = project
    (host / "state").mkdir(parents=True)
    reported, older = SUCCESS(), Entry("20261120120000-abc", "abc", "bob@laptop", 1e9, 1e9 + 9, "success")
    (host / "state" / "history.jsonl").write_text(f"{to_json(older)}\n{to_json(reported)}\n")
    done = fab(project, "releases", "--report", reported.release)
    assert done.returncode == 0, done.stderr
    md, png = (project / "reports" / f"{reported.release}.{ext}" for ext in ("md", "png"))
    assert done.stdout.split() == [str(md), str(png)]
    assert "| 50% | advance |" in md.read_text() and png.read_bytes()[:4] == b"\x89PNG"
    unknown = fab(project, "releases", "--report", "nope")
    assert unknown.returncode == 2 and unknown.stderr.strip().splitlines()[-1] == (
        f"release nope is not in the history of stack t (newest: {reported.release}, {older.release})")
    bare = fab(project, "releases", "--report", older.release, "--out", str(project / "elsewhere"))
    assert bare.returncode == 1 and "has no report: it was deployed before deploys wrote one" in bare.stderr
    assert not (project / "elsewhere").exists()
    assert "--report" in fab(project, "releases", "--help").stdout
