"""`fab backup`, `fab backups`, `fab restore` as a user runs them: over the real sshd, on the local stack's
PostgreSQL cluster (Debian's pg_createcluster on port 5433, peer auth for `postgres` on its socket), with a
throwaway database and host root so the stack's own data is never touched."""
from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.lock.fabproject import ROOT, fab, sshd, write_project  # noqa: F401  (fixture)

PORT = 5433  # the local stack's cluster (Pulumi.local.yaml)


def psql(sql: str, db: str = "postgres") -> str:
    proc = subprocess.run(["runuser", "-u", "postgres", "--", "psql", "-p", str(PORT), "-d", db, "-XAtq",
                           "-v", "ON_ERROR_STOP=1", "-c", sql], capture_output=True, text=True, cwd="/", timeout=60)
    if proc.returncode:
        raise RuntimeError(proc.stderr)
    return proc.stdout.strip()


def ensure_cluster() -> None:
    """The local stack's PostgreSQL; `fab setup --stack local` creates and starts it when it is not up."""
    try:
        psql("SELECT 1")
    except (RuntimeError, FileNotFoundError):
        subprocess.run([str(ROOT / ".venv" / "bin" / "fab"), "setup", "--stack", "local"], cwd=ROOT,
                       check=True, capture_output=True, timeout=600)
        psql("SELECT 1")


@pytest.fixture
def site(sshd):
    ensure_cluster()
    name, password = "bktask" + secrets.token_hex(3), secrets.token_hex(12)
    psql(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
    psql(f"CREATE DATABASE {name} OWNER {name}")
    psql(f"SET ROLE {name}; CREATE TABLE notes (id int PRIMARY KEY);"
         "INSERT INTO notes SELECT generate_series(1, 50)", name)
    base = Path(tempfile.mkdtemp(prefix="shipshape-tasks-"))
    (base / "project").mkdir()
    write_project(base / "project", base / "host", {"name": name, "user": name, "port": PORT})
    (base / "host" / "shared").mkdir(parents=True)
    (base / "host" / "shared" / "secrets.env").write_text(f"DATABASE_PASSWORD={password}\n")
    yield base / "project", base / "host", name, password
    psql(f"DROP DATABASE IF EXISTS {name}")
    psql(f"DROP DATABASE IF EXISTS {name}_restore_check")
    psql(f"DROP ROLE IF EXISTS {name}")
    shutil.rmtree(base, ignore_errors=True)


def test_backup_list_restore(site):
    project, host, name, password = site
    made = fab(project, "backup")
    assert made.returncode == 0, made.stderr
    (backup_id,) = [p.stem for p in (host / "backups").glob("*.dump")]
    assert backup_id in fab(project, "backups").stdout
    psql("DELETE FROM notes WHERE id > 5", name)
    restored = fab(project, "restore", "--backup", backup_id)
    assert restored.returncode == 0, restored.stderr
    assert psql("SELECT count(*) FROM notes", name) == "50"
    assert len(list((host / "backups").glob("*-pre-restore.dump"))) == 1  # the database it replaced
    for out in (made, restored):
        assert password not in out.stdout + out.stderr


def test_restore_of_a_corrupt_dump_changes_nothing(site):
    project, host, name, _ = site
    assert fab(project, "backup").returncode == 0
    (dump,) = (host / "backups").glob("*.dump")
    (host / "backups" / "broken.dump").write_bytes(dump.read_bytes()[:300])
    psql("DELETE FROM notes WHERE id > 7", name)
    refused = fab(project, "restore", "--backup", "broken")
    assert refused.returncode == 1 and "restore failed" in refused.stderr
    assert psql("SELECT count(*) FROM notes", name) == "7"
    assert not list((host / "backups").glob("*-pre-restore.dump"))  # stopped before touching anything
    assert not (host / "state" / "lock").exists()  # released on failure
