"""Host commands of a release, as data: unpack, venv, migrate, readiness, canary step, prune.

Pure builders; `shipshape.release` decides which to run and sends each group in one round trip.
Secrets are read from secrets.env by the host's shell (sed, never `source`, never argv).
"""
from __future__ import annotations

import shlex
import time

from shipshape.build import OVERRIDE_FILE  # optional KEY=value lines in the app dir: extra env for that release
from shipshape.hoststate import venv_dir
from shipshape.layout import Layout
from shipshape.remote import Command, Script
from shipshape.runtimes.pm2 import app_args

RELEASE_ENV = ".env"               # per-release env file (override + secrets) when the override exists
q = shlex.quote


def new_release_id(sha: str, dirty: bool = False, now: float | None = None) -> str:
    """`<UTC yyyymmddHHMMSS>-<sha12>[-dirty]` (docs/host-state.md): sorts by time."""
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(now))
    return f"{stamp}-{sha[:12]}" + ("-dirty" if dirty else "")


def unpack_commands(layout: Layout, app_user: str, artifact_id: str, release_id: str,
                    requirements_hash: str) -> list[Command]:
    """Unpack the artifact into releases/<id> (via a temp dir) and make its venv unless one exists."""
    rel, venv = layout.release(release_id), venv_dir(layout, requirements_hash)
    env_file = f"{rel}/{RELEASE_ENV}"
    return [
        Script(f"if [ ! -d {q(rel)} ]; then rm -rf {q(rel + '.tmp')} && mkdir -p {q(rel + '.tmp')} && "
               f"tar -xzf {q(layout.artifact(artifact_id))} -C {q(rel + '.tmp')} && mv {q(rel + '.tmp')} {q(rel)}; fi"),
        # `.complete` marks a finished venv: an interrupted install is redone, never half used.
        Script(f"if [ ! -f {q(venv + '/.complete')} ]; then rm -rf {q(venv)} && /usr/bin/python3 -m venv {q(venv)} && "
               f"{q(venv + '/bin/pip')} install -q --disable-pip-version-check -r {q(rel + '/requirements.txt')} "
               f"&& touch {q(venv + '/.complete')} && echo 'venv created'; else echo 'venv reused'; fi"),
        Script(f"if [ -f {q(rel + '/' + OVERRIDE_FILE)} ]; then umask 077; cat {q(rel + '/' + OVERRIDE_FILE)} "
               f"{q(layout.secrets_env)} > {q(env_file)} && chown {q(app_user)} {q(env_file)}; fi"),
    ]


def _export_secret(layout: Layout, name: str) -> str:
    return f"export {name}=\"$(sed -n 's/^{name}=//p' {q(layout.secrets_env)})\""


def migrate_command(layout: Layout, stack, release_id: str, requirements_hash: str,
                    create_users: bool) -> Command:
    """`alembic upgrade head` in the release dir as the app user; then (stdin: `user role password`
    lines) create or update the check accounts with the app's CLI, password via APP_USER_PASSWORD."""
    rel, python = layout.release(release_id), venv_dir(layout, requirements_hash) + "/bin/python"
    user = q(stack.host.app_user)
    migrate = shlex.join([python, *app_args(stack.app.migrate, stack.app.port)])
    # Read the accounts first: once a step fails the shell exits, and unread stdin would break the channel.
    lines = ["set -e", "ACCOUNTS=$(cat)" if create_users else ":", _export_secret(layout, "DATABASE_URL"), f"cd {q(rel)}",
             f"runuser -u {user} -- {migrate} 2>&1"]
    if create_users:
        lines.append(f"while read -r U R APP_USER_PASSWORD; do export APP_USER_PASSWORD; "
                     f"runuser -u {user} -- {q(python)} -m app.cli create-user --username \"$U\" --role \"$R\"; "
                     "done <<< \"$ACCOUNTS\"")
    return Script("\n".join(lines))


READY_PROBE = r"""import sys, time, urllib.request
url, deadline, last = sys.argv[1], time.time() + float(sys.argv[2]), "no answer"
while True:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            print("ready", answer.status); sys.exit(0)
    except urllib.error.HTTPError as error:
        last = f"HTTP {error.code} {error.read()[:300].decode(errors='replace')}"
    except Exception as error:
        last = str(error)
    if time.time() >= deadline:
        print(f"not ready after {sys.argv[2]}s: {last}", file=sys.stderr); sys.exit(3)
    time.sleep(0.25)
"""


def readiness_command(port: int, path: str, timeout: float) -> Command:
    """Poll http://127.0.0.1:PORT/PATH on the host until 200 or the deadline: one round trip, any wait."""
    return ["python3", "-c", READY_PROBE, f"http://127.0.0.1:{port}{path}", f"{timeout:g}"]


def bake_command(seconds: float) -> Command:
    return ["sleep", f"{seconds:g}"]


def prune_plan(existing: list[str], keep: int, protected: set[str]) -> list[str]:
    """Release ids to delete: all but the newest `keep`, never a protected one (serving, rollback target)."""
    ordered = sorted(existing, reverse=True)
    return [rid for rid in ordered[keep:] if rid not in protected]


def prune_command(layout: Layout, doomed: list[str]) -> Command:
    if not doomed:
        return ["true"]
    return ["rm", "-rf", *(layout.release(rid) for rid in doomed)]
