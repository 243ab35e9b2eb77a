"""`fab setup`: make a host ready for releases (one idempotent script, one SSH round trip)."""
from __future__ import annotations

import os
import secrets as pysecrets
from pathlib import Path

from fabric import task

from deploy.stackinfo import load_or_exit
from shipshape import provision
from shipshape.config import Target
from shipshape.layout import layout_for
from shipshape.progress import info, step
from shipshape.remote import Runner, Script, connect
from shipshape.secrets import read_secrets_file
from shipshape.stackfile import find_root, secrets_path


def local_secret_names(stack) -> list[str]:
    """The `file:` references of the check accounts (their passwords live in .secrets/<stack>.env)."""
    return [a.password.name for a in stack.checks.accounts.values() if a.password.kind == "file"]


def ensure_local_secrets(stack, path: Path) -> list[str]:
    """Generate the missing check-account passwords into `path` (mode 600); return the names added."""
    present = read_secrets_file(path)
    missing = [name for name in local_secret_names(stack) if name not in present]
    if missing:
        path.parent.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as out:
            out.writelines(f"{name}={pysecrets.token_urlsafe(24)}\n" for name in missing)
    os.chmod(path, 0o600)  # also tightens a file someone created by hand
    return missing


def run_setup(stack, runner: Runner) -> list[str]:
    """Run the provisioning script on the host; returns what it changed (empty on a second run)."""
    output = runner.run(Script(provision.provision_script(stack, layout_for(stack)))).stdout
    return provision.parse_changes(output)[1]


@task(help={"stack": "stack name: reads Pulumi.<stack>.yaml (default: local)"})
def setup(c, stack="local"):
    """Prepare the host: app user, directories, secrets, PostgreSQL, Redis, PM2, nginx, backup cron.

    Idempotent: a second run reports no changes. On the local stack it also generates the missing
    check-account passwords into .secrets/local.env (mode 600).
    Example: fab setup --stack local
    """
    settings = load_or_exit(stack)
    root = find_root()
    if settings.target is Target.local:
        with step("local check-account passwords"):
            added = ensure_local_secrets(settings, secrets_path(stack, root))
            info(f"generated {', '.join(added)}" if added else "all present")
    with step(f"provision {settings.host.user}@{settings.host.address}:{settings.host.port}"):
        runner = Runner(connect(settings.host, root))
        changes = run_setup(settings, runner)
        for line in changes:
            info(line)
        info(f"{len(changes)} change(s)" if changes else "nothing to change")
