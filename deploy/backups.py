"""`fab backup`, `fab restore`, `fab backups`: PostgreSQL dumps on the host, restored only after a scratch check."""
from __future__ import annotations

import time

from fabric import task
from rich.console import Console
from rich.table import Table

from deploy.history import STACK_HELP, fail, host_runner
from deploy.stackinfo import load_or_exit
from shipshape import backup as dumps
from shipshape.layout import layout_for
from shipshape.lock import LockHeld, format_age, held
from shipshape.progress import info, step
from shipshape.remote import RemoteError


@task(help={"stack": STACK_HELP})
def backup(c, stack="local"):
    """Dump the stack's database now to backups/<UTC time>.dump (mode 600) and prune expired dumps.

    Example: fab backup --stack prod
    """
    settings = load_or_exit(stack)
    backup_id = dumps.new_backup_id()
    with host_runner(settings) as runner:
        _backup(runner, settings, backup_id)


def _backup(runner, settings, backup_id: str) -> None:
    with step(f"backup {backup_id} of database {settings.database.name}"):
        try:
            out = runner.run_all(dumps.backup_commands(settings, layout_for(settings), backup_id)).stdout
        except RemoteError as error:
            fail(f"backup failed: {error}")
        written, *pruned = out.splitlines()  # the dump's path, then what retention removed
        info(f"wrote {written}")
        for path in pruned:
            info(f"pruned {path}")


@task(help={"stack": STACK_HELP, "backup": "the backup id to restore, as `fab backups` lists it"})
def restore(c, backup, stack="local"):
    """Restore a backup: first into a scratch database as a check, then over the real one in one transaction.

    Takes the deploy lock, and dumps the current database before replacing it (id <time>-pre-restore).
    Example: fab restore --stack local --backup 20261121030000
    """
    settings = load_or_exit(stack)
    try:
        commands = dumps.restore_commands(settings, layout_for(settings), backup)
    except ValueError as error:
        fail(f"--backup: {error}", 2)
    with host_runner(settings) as runner:
        try:
            with held(runner, layout_for(settings), "fab restore", stack=stack):
                with step(f"restore {backup} into a scratch database"):
                    info(runner.run(commands[0]).stdout.strip())
                _backup(runner, settings, dumps.new_backup_id(label="pre-restore"))
                with step(f"restore {backup} into {settings.database.name}"):
                    runner.run(commands[1])
        except (LockHeld, RemoteError) as error:
            fail(f"restore failed: {error}")


@task(help={"stack": STACK_HELP})
def backups(c, stack="local"):
    """List the backups on the host, newest first (id, size, age).

    Example: fab backups --stack prod
    """
    settings = load_or_exit(stack)
    with host_runner(settings) as runner:
        found = dumps.parse_list(runner.run(dumps.list_command(layout_for(settings))).stdout)
    if not found:
        print(f"no backups on stack {stack}")
        return
    table = Table("backup", "size", "age")
    for b in found:
        table.add_row(b.id, f"{b.size / 1024:.1f} KiB", format_age(time.time() - b.created))
    Console(highlight=False).print(table)
