"""`fab setup`: make a host ready for releases (one idempotent script, one SSH round trip)."""
from __future__ import annotations

import os
import secrets as pysecrets
from pathlib import Path

from fabric import task

from deploy.release import failing_cleanly
from deploy.stackinfo import load_or_exit
from shipshape import lock, nginx, provision
from shipshape.config import Target
from shipshape.layout import layout_for
from shipshape.progress import info, step
from shipshape.remote import Runner, Script, connect
from shipshape.secrets import read_secrets_file
from shipshape.stackfile import find_root, secrets_path
from shipshape.targets import NotSupported


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
    if path.exists():
        os.chmod(path, 0o600)  # also tightens a file someone created by hand
    return missing


def refresh_site(stack, runner: Runner) -> tuple[bool, str]:
    """Rewrite nginx.conf from the stack file at the weights it serves now, if they differ.

    The provisioning script writes the site only once (deploys own the weights after); this is how a
    changed shipshape:tls or http_port reaches a running host. Holds the deploy lock, so it never
    races a canary. Returns whether it rewrote the site, and what it found or did.
    """
    layout = layout_for(stack)
    with lock.held(runner, layout, "setup", stack=stack.name):
        current = runner.run(nginx.read_config_command(layout)).stdout
        weights = nginx.weights_in_config(current, stack)
        if not any(weights.values()):  # e.g. app.port changed: the next deploy writes the site
            return False, f"left {layout.nginx_conf} alone: it routes to no slot on ports {stack.app.slot_ports}"
        wanted = nginx.site_config(stack, layout, weights)
        if current.strip() == wanted.strip():
            return False, "as configured"
        runner.run_all(nginx.apply_commands(layout, wanted))
    tls = f"HTTPS on {stack.tls.https_port}" if stack.tls else "plain HTTP only"
    return True, f"nginx site rewritten from {stack.source} ({tls}; weights kept: {weights})"


def run_setup(stack, runner: Runner) -> list[str]:
    """Run the provisioning script on the host; returns what it changed (empty on a second run)."""
    output = runner.run(Script(provision.provision_script(stack, layout_for(stack)))).stdout
    return provision.parse_changes(output)[1]


@task(help={"stack": "stack name: reads Pulumi.<stack>.yaml (default: local)"})
def setup(c, stack="local"):
    """Prepare the host: app user, directories, secrets, PostgreSQL, Redis, Node + PM2 or Docker (the stack's runtime), nginx, backup cron.

    Idempotent: a second run reports no changes. On the local stack it also generates the missing
    check-account passwords into .secrets/local.env (mode 600). A running site whose nginx.conf no
    longer matches the stack file (e.g. shipshape:tls added) is rewritten, keeping its live weights.
    Example: fab setup --stack local
    """
    settings = load_or_exit(stack)
    root = find_root()
    with failing_cleanly("setup"):
        if settings.target is Target.cloudrun:
            raise NotSupported(f"{settings.source}: shipshape:target = cloudrun: there is no host to set up; "
                               f"`pulumi up --stack {stack}` provisions Cloud Run")
        if settings.target is Target.local:
            with step("local check-account passwords"):
                added = ensure_local_secrets(settings, secrets_path(stack, root))
                info(f"generated {', '.join(added)}" if added else "all present")
        with step(f"provision {settings.host.user}@{settings.host.address}:{settings.host.port}"):
            runner = Runner(connect(settings.host, root))
            changes = run_setup(settings, runner)
            for line in changes:
                info(line)
        with step("nginx site matches the stack file"):
            rewritten, note = refresh_site(settings, runner)
            info(note)
            if rewritten:
                changes.append(note)
    info(f"{len(changes)} change(s)" if changes else "nothing to change")
