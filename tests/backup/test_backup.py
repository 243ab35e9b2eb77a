"""Backups: exact commands, list parsing, cron; and dump/restore against a real PostgreSQL 15."""
from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import invoke
import pytest

from shipshape import backup
from shipshape.config import Stack
from shipshape.layout import Layout
from shipshape.remote import RemoteError, Runner, render

LAYOUT = Layout("/srv/shipshape")
STACK = Stack(name="prod", source="test", database={"name": "app", "user": "app", "port": 5433},
              retention={"backup_days": 7})


def test_backup_keeps_the_password_off_every_command_line():
    dump, prune = backup.backup_commands(STACK, LAYOUT, "20261121030000")
    text = render(dump)
    assert "PGPASSWORD=$(sed -n 's/^DATABASE_PASSWORD=//p' /srv/shipshape/shared/secrets.env)" in text
    assert "pg_dump -Fc -h 127.0.0.1 -p 5433 -U app -d app -f /srv/shipshape/backups/\"$ID\".dump.tmp" in text
    assert text.startswith("ID=20261121030000\numask 077\n")
    assert render(prune) == ("find /srv/shipshape/backups -maxdepth 1 -name '*.dump' -type f "
                             "-mmin +10080 -print -delete")


@pytest.mark.parametrize("bad", ["../etc/passwd", "", "a b", "-rf", "x;rm"])
def test_bad_backup_ids_are_refused_before_any_command(bad):
    with pytest.raises(ValueError, match="backup id"):
        backup.restore_commands(STACK, LAYOUT, bad)


def test_restore_checks_a_scratch_database_before_the_real_one():
    check, real = (render(c) for c in backup.restore_commands(STACK, LAYOUT, "b1"))
    pg = "runuser -u postgres -- {} -h /var/run/postgresql -p 5433 -U postgres"
    assert f"{pg.format('createdb')} -O app app_restore_check" in check
    assert f"{pg.format('pg_restore')} --exit-on-error -d app_restore_check < /srv/shipshape/backups/b1.dump" in check
    # the accounts' fingerprint goes first: the restored rows may not hold the accounts (shipshape/accounts.py)
    assert real == (f"rm -f /srv/shipshape/state/accounts.fingerprint && cd / && PGOPTIONS='-c lock_timeout=30s' {pg.format('pg_restore')} --clean --if-exists "
                    "--single-transaction --exit-on-error -d app < /srv/shipshape/backups/b1.dump")


def test_cron_line_and_script():
    assert backup.cron_line(STACK, LAYOUT) == (
        "0 3 * * * root /srv/shipshape/shared/backup.sh >> /srv/shipshape/logs/backup.log 2>&1")
    script = backup.backup_script(STACK, LAYOUT)
    assert script.startswith("#!/bin/sh\n") and "ID=$(date -u +%Y%m%d%H%M%S)\n" in script
    assert script.rstrip().endswith("-mmin +10080 -print -delete")


def test_parse_list_newest_first():
    stdout = "a.dump 10 100.5\nb.dump 20 200.0\nnot-a-dump.txt 1 1\n\n"
    assert backup.parse_list(stdout) == [backup.Backup("b", 20, 200.0), backup.Backup("a", 10, 100.5)]


def test_new_backup_id():
    assert backup.new_backup_id(0) == "19700101000000"
    assert backup.new_backup_id(0, "pre-restore") == "19700101000000-pre-restore"


# Against a real PostgreSQL: the commands run by a local shell, as they would over SSH on the host.

@pytest.fixture
def site(postgres_server, tmp_path):
    """A database owned by its own role with a table of 100 rows, and a layout whose secrets hold its password."""
    name, password = "bk" + secrets.token_hex(3), secrets.token_hex(12)
    postgres_server.create_database(name, password)
    postgres_server.psql(f"SET ROLE {name}; CREATE TABLE notes (id int PRIMARY KEY, body text);"
                         "INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 100) g", name)
    layout = Layout(str(tmp_path / "root"))
    Path(layout.shared).mkdir(parents=True)
    Path(layout.secrets_env).write_text(f"DATABASE_PASSWORD={password}\nSECRET_KEY=x\n")
    stack = Stack(name="test", source="test",
                  database={"name": name, "user": name, "port": postgres_server.port})
    runner = Runner(invoke.Context(), secrets=[password])
    return stack, layout, runner, postgres_server, password


def rows(server, name):
    return int(server.psql("SELECT count(*) FROM notes", name))


def test_backup_restores_the_rows(site):
    stack, layout, runner, server, password = site
    runner.run_all(backup.backup_commands(stack, layout, "b1"))
    dump = Path(layout.backups) / "b1.dump"
    assert dump.stat().st_mode & 0o777 == 0o600
    assert [b.id for b in backup.parse_list(runner.run(backup.list_command(layout)).stdout)] == ["b1"]
    server.psql("DELETE FROM notes WHERE id > 10", stack.database.name)
    result = runner.run_all(backup.restore_commands(stack, layout, "b1", socket_dir=str(server.sockdir)))
    assert "restored 1 tables" in result.stdout
    assert rows(server, stack.database.name) == 100
    assert stack.database.name + "_restore_check" not in server.psql("SELECT datname FROM pg_database")


def test_corrupt_backup_fails_the_scratch_restore_and_leaves_the_database_alone(site):
    stack, layout, runner, server, _ = site
    runner.run_all(backup.backup_commands(stack, layout, "good"))
    data = (Path(layout.backups) / "good.dump").read_bytes()
    (Path(layout.backups) / "bad.dump").write_bytes(data[: len(data) // 2])  # truncated: a half-copied file
    server.psql("DELETE FROM notes WHERE id > 42", stack.database.name)
    scratch_check, _ = backup.restore_commands(stack, layout, "bad", socket_dir=str(server.sockdir))
    with pytest.raises(RemoteError):  # the scratch check alone is what catches it
        runner.run(scratch_check)
    with pytest.raises(RemoteError):
        runner.run_all(backup.restore_commands(stack, layout, "bad", socket_dir=str(server.sockdir)))
    assert rows(server, stack.database.name) == 42
    assert stack.database.name + "_restore_check" not in server.psql("SELECT datname FROM pg_database")


def test_missing_backup_is_named(site):
    stack, layout, runner, server, _ = site
    with pytest.raises(RemoteError, match="backup nope: no such dump"):
        runner.run_all(backup.restore_commands(stack, layout, "nope", socket_dir=str(server.sockdir)))


def test_prune_removes_only_old_dumps(site):
    stack, layout, runner, _, _ = site
    Path(layout.backups).mkdir(parents=True)
    old = Path(layout.backups) / "old.dump"
    old.write_bytes(b"x")
    os.utime(old, (0, 0))
    runner.run_all(backup.backup_commands(stack, layout, "new"))
    assert sorted(p.name for p in Path(layout.backups).iterdir()) == ["new.dump"]


def test_cron_script_runs_standalone_without_leaking_the_password(site, tmp_path):
    stack, layout, _, _, password = site
    script = tmp_path / "backup.sh"
    script.write_text(backup.backup_script(stack, layout))
    script.chmod(0o700)
    proc = subprocess.run([str(script)], capture_output=True, text=True, timeout=60, env={"PATH": os.environ["PATH"]})
    assert proc.returncode == 0, proc.stderr
    assert password not in proc.stdout + proc.stderr
    assert len(list(Path(layout.backups).glob("*.dump"))) == 1


def test_real_restore_is_all_or_nothing(site):
    """Even run alone (no scratch check), a dump that breaks halfway leaves the database as it was."""
    stack, layout, runner, server, _ = site
    runner.run_all(backup.backup_commands(stack, layout, "good"))
    data = (Path(layout.backups) / "good.dump").read_bytes()
    (Path(layout.backups) / "bad.dump").write_bytes(data[: len(data) - 40])  # schema intact, data cut short
    server.psql("DELETE FROM notes WHERE id > 42", stack.database.name)
    _, real = backup.restore_commands(stack, layout, "bad", socket_dir=str(server.sockdir))
    with pytest.raises(RemoteError):
        runner.run(real)
    assert rows(server, stack.database.name) == 42
