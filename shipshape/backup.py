"""PostgreSQL backups on the host: pg_dump archives, retention, a tested restore, and the daily cron job.

    runner.run_all(backup_commands(stack, layout, new_backup_id()))     # {backups}/<id>.dump, mode 600
    runner.run_all(restore_commands(stack, layout, "20261121030000"))   # scratch restore first, then real

Dumps connect as the app's database user over TCP with the password read from the host's secrets file
by the shell (never on a command line, where `ps` would show it). Restores need to create and drop a
scratch database, so they run as the `postgres` superuser over the local socket (peer auth on Debian).
The backup script is plain sh so the cron job needs nothing of shipshape on the host.
"""
from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass

from shipshape import accounts
from shipshape.layout import Layout
from shipshape.remote import Command, Script, render

SOCKET_DIR = "/var/run/postgresql"  # Debian's clusters (pg_createcluster) listen here
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
SCRATCH_SUFFIX = "_restore_check"


@dataclass(frozen=True)
class Backup:
    id: str
    size: int
    created: float


def new_backup_id(now: float | None = None, label: str = "") -> str:
    """`<UTC yyyymmddHHMMSS>[-label]`, sortable like release ids."""
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(now))
    return f"{stamp}-{label}" if label else stamp


def check_id(backup_id: str) -> str:
    """Refuse ids that could escape the backups directory, before anything runs on the host."""
    if not ID_PATTERN.match(backup_id or ""):
        raise ValueError(f"backup id {backup_id!r}: expected letters, digits, '.', '_' or '-' (e.g. 20261121030000)")
    return backup_id


def dump_path(layout: Layout, backup_id: str) -> str:
    return f"{layout.backups}/{check_id(backup_id)}.dump"


def _dump_script(stack, layout: Layout, id_expr: str) -> str:
    """pg_dump -Fc to a temp name, then rename: a half-written dump never looks like a backup."""
    db, quote = stack.database, shlex.quote
    target = f"{quote(layout.backups)}/\"$ID\".dump"
    return "\n".join([
        f"ID={id_expr}",
        "umask 077",
        f"mkdir -p {quote(layout.backups)}",
        # sed, not `. secrets.env`: the file is data, and sourcing it would execute it
        f"PGPASSWORD=$(sed -n 's/^DATABASE_PASSWORD=//p' {quote(layout.secrets_env)})",
        "export PGPASSWORD",
        f"pg_dump -Fc -h 127.0.0.1 -p {db.port} -U {quote(db.user)} -d {quote(db.name)} -f {target}.tmp",
        f"chmod 600 {target}.tmp",
        f"mv {target}.tmp {target}",
        f"echo {target}",
    ])


def _prune_command(stack, layout: Layout) -> Command:
    """Delete dumps older than retention.backup_days (minutes, so 7 days means 7x24h, not find's rounding)."""
    minutes = stack.retention.backup_days * 24 * 60
    return ["find", layout.backups, "-maxdepth", "1", "-name", "*.dump", "-type", "f",
            "-mmin", f"+{minutes}", "-print", "-delete"]


def backup_commands(stack, layout: Layout, backup_id: str) -> list[Command]:
    """Dump the app database to {backups}/<id>.dump (mode 600), then prune old dumps."""
    return [Script(_dump_script(stack, layout, shlex.quote(check_id(backup_id)))),
            _prune_command(stack, layout)]


def backup_script(stack, layout: Layout) -> str:
    """The same backup as a standalone sh script for cron, named by the UTC time it runs."""
    body = _dump_script(stack, layout, "$(date -u +%Y%m%d%H%M%S)")
    return f"#!/bin/sh\n# shipshape daily backup of {stack.name} (generated; do not edit)\nset -e\n" \
           f"{body}\n{render(_prune_command(stack, layout))}\n"


def backup_script_path(layout: Layout) -> str:
    return f"{layout.shared}/backup.sh"


def cron_line(stack, layout: Layout, script: str | None = None, user: str = "root") -> str:
    """An /etc/cron.d line running the backup script on retention.backup_schedule, logging to logs/."""
    script = script or backup_script_path(layout)
    log = shlex.quote(f"{layout.logs}/backup.log")
    return f"{stack.retention.backup_schedule} {user} {shlex.quote(script)} >> {log} 2>&1"


def list_command(layout: Layout) -> Command:
    """One line per dump: `<file> <bytes> <mtime epoch>`."""
    path = shlex.quote(layout.backups)
    return Script(f"if [ -d {path} ]; then find {path} -maxdepth 1 -name '*.dump' -type f "
                  f"-printf '%f %s %T@\\n'; fi")


def parse_list(stdout: str) -> list[Backup]:
    """Backups newest first."""
    backups = []
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].endswith(".dump"):
            backups.append(Backup(parts[0][: -len(".dump")], int(parts[1]), float(parts[2])))
    return sorted(backups, key=lambda b: (b.created, b.id), reverse=True)


def _as_postgres(stack, socket_dir: str, tool: str, *args: str) -> str:
    """A PostgreSQL client run as the superuser over the local socket (no password involved)."""
    return shlex.join(["runuser", "-u", "postgres", "--", tool, "-h", socket_dir,
                       "-p", str(stack.database.port), "-U", "postgres", *args])


def _scratch_check_script(stack, layout: Layout, backup_id: str, socket_dir: str) -> str:
    """Restore into <db>_restore_check, require tables in it, drop it (also when anything fails)."""
    dump, scratch = shlex.quote(dump_path(layout, backup_id)), stack.database.name + SCRATCH_SUFFIX
    pg = lambda tool, *args: _as_postgres(stack, socket_dir, tool, *args)  # noqa: E731
    count = ("SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")
    return "\n".join([
        "cd /",  # runuser keeps the cwd, and postgres may not enter root's home
        f"test -s {dump} || {{ echo 'backup {backup_id}: no such dump' >&2; exit 1; }}",
        pg("dropdb", "--if-exists", scratch),
        pg("createdb", "-O", stack.database.user, scratch),
        f"trap {shlex.quote(pg('dropdb', '--if-exists', scratch))} EXIT",
        # the root shell opens the 600 dump and hands it to pg_restore (running as postgres) on stdin
        f"{pg('pg_restore', '--exit-on-error', '-d', scratch)} < {dump}",
        f"TABLES=$({pg('psql', '-d', scratch, '-XAtc', count)})",
        f"[ \"$TABLES\" -gt 0 ] || {{ echo 'backup {backup_id}: restored no tables (an empty database?)' >&2; exit 1; }}",
        f"echo \"restore check: backup {backup_id} restored $TABLES tables into {scratch}\"",
    ])


def restore_commands(stack, layout: Layout, backup_id: str, socket_dir: str = SOCKET_DIR) -> list[Command]:
    """Prove the dump restores into a scratch database, and only then restore it over the real one.

    The real restore is `pg_restore --clean --if-exists --single-transaction`: every drop and create
    happens in ONE transaction, so a dump that fails halfway leaves the database exactly as it was.
    (Drop + create database cannot: DROP DATABASE refuses to run in a transaction, and a failed
    restore would leave no database at all.) lock_timeout stops it waiting forever on app sessions.
    The restored rows replace the check accounts in place: the accounts' fingerprint goes first, so the
    next deploy creates them again (shipshape.accounts).
    """
    dump = shlex.quote(dump_path(layout, backup_id))
    restore = _as_postgres(stack, socket_dir, "pg_restore", "--clean", "--if-exists", "--single-transaction",
                           "--exit-on-error", "-d", stack.database.name)
    return [Script(_scratch_check_script(stack, layout, backup_id, socket_dir)),
            Script(f"{render(accounts.forget_command(layout))} && cd / && PGOPTIONS='-c lock_timeout=30s' {restore} < {dump}")]
