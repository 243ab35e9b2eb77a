"""`fab releases`, `fab lock`, `fab unlock`: the audit history with its DORA figures, and the deploy lock."""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from fabric import task
from rich.console import Console
from rich.table import Table

from deploy.stackinfo import load_or_exit
from shipshape import history as audit
from shipshape import lock as locking
from shipshape.layout import layout_for
from shipshape.progress import info, step
from shipshape.remote import Runner, connect
from shipshape.stackfile import find_root

STACK_HELP = "stack name: reads Pulumi.<stack>.yaml (default: local)"
OUTCOME_STYLE = {"success": "green", "failed": "red", "rolled_back": "yellow"}


@contextmanager
def host_runner(settings):
    """A Runner on the stack's host over one SSH connection, closed on the way out."""
    if settings.is_cloud:
        fail(f"{settings.source}: shipshape:target = cloudrun: this task acts on a host, and a Cloud Run "
             "stack has none", 2)
    connection = connect(settings.host, find_root())
    try:
        yield Runner(connection)
    finally:
        connection.close()


@contextmanager
def cloud_target(settings):
    """The Cloud Run stack's target (Google credentials checked); failures as one line."""
    from shipshape.gcp import GcpError
    from shipshape.targets import open_target

    try:
        yield open_target(settings, find_root(), with_secrets=False)
    except GcpError as error:
        fail(str(error))


def fail(message: str, code: int = 1):
    print(message, file=sys.stderr)
    raise SystemExit(code)


def releases_table(entries: list[audit.Entry], limit: int = 10) -> Table:
    table = Table("release", "git sha", "kind", "who", "when (UTC)", "duration", "outcome")
    for e in reversed(entries[-limit:]):
        when = datetime.fromtimestamp(e.started, timezone.utc).strftime("%Y-%m-%d %H:%M")
        outcome = e.outcome + (f" at {e.step}" if e.step else "")
        table.add_row(e.release, e.git_sha[:12], e.kind, e.who, when, f"{e.duration_s:.0f}s",
                      f"[{OUTCOME_STYLE[e.outcome]}]{outcome}[/]")
    return table


def dora_lines(m: audit.Metrics) -> list[str]:
    def span(seconds):
        return "n/a" if seconds is None else locking.format_age(seconds)
    rate = "n/a" if m.change_failure_rate is None else f"{m.change_failure_rate:.0%}"
    return [f"over the last {m.window_days:.0f} days ({m.deploys} deploys):",
            f"  lead time (commit -> deployed, median)  {span(m.lead_time_s)}",
            f"  deploy frequency                        {m.deploys_per_day:.2f} per day",
            f"  change failure rate                     {rate}",
            f"  time to restore (median)                {span(m.time_to_restore_s)}"]


def report_entry(entries: list[audit.Entry], release: str, stack: str) -> audit.Entry:
    """The newest entry of `release` that carries a report, or a one-line error (exit 2 unknown, 1 none)."""
    mine = [e for e in entries if e.release == release]
    if not mine:
        newest = ", ".join(e.release for e in reversed(entries[-3:])) or "none"
        fail(f"release {release} is not in the history of stack {stack} (newest: {newest})", 2)
    reported = [e for e in mine if e.report]
    if not reported:
        fail(f"release {release} has no report: it was deployed before deploys wrote one", 1)
    return reported[-1]


@task(help={"stack": STACK_HELP, "limit": "how many deploys to list (default: 10)",
            "report": "write that release's deploy report: <release>.md and <release>.png (docs/deploy.md)",
            "out": "directory for --report's files (default: reports/ in the project root)"})
def releases(c, stack="local", limit=10, report=None, out=None):
    """Show the last deploys and rollbacks (release, sha, who, when, duration, outcome) and the DORA figures.

    --report RELEASE writes the report of that release's newest deploy instead: <release>.md (phase timings,
    the canary gate's decisions per step) and <release>.png (per slot requests and error rate over the canary,
    where each step began, each decision), in --out (default: reports/ in the project root); prints both paths.

    Example: fab releases --stack prod --limit 20
             fab releases --report 20261121120000-0123456789ab --out /tmp
    """
    settings = load_or_exit(stack)
    entries = read_history(settings)
    if report:
        from shipshape import report as deploy_report  # matplotlib: only for this
        paths = deploy_report.write(report_entry(entries, report, stack), Path(out or find_root() / "reports"))
        print("\n".join(map(str, paths)))
        return
    if not entries:
        print(f"no deploys recorded on stack {stack} yet")
        return
    out = Console(highlight=False)
    out.print(releases_table(entries, int(limit)))
    for line in dora_lines(audit.metrics(entries, now=time.time())):
        out.print(line, markup=False)


def read_history(settings) -> list[audit.Entry]:
    if settings.is_cloud:
        with step(f"read history on Cloud Run service {settings.app.name}"), cloud_target(settings) as t:
            return t.read_state().history
    with step(f"read history on {settings.host.address}"), host_runner(settings) as runner:
        return audit.parse(runner.run(audit.read_command(layout_for(settings))).stdout)


@task(help={"stack": STACK_HELP})
def lock(c, stack="local"):
    """Show who holds the stack's deploy lock, for how long, and whether it looks stale.

    Example: fab lock --stack prod
    """
    settings = load_or_exit(stack)
    if settings.is_cloud:
        with cloud_target(settings) as t:
            holder = t.read_state().lock
    else:
        with host_runner(settings) as runner:
            holder = locking.status(runner, layout_for(settings))
    print(f"stack {stack} is not locked" if holder is None else locking.describe(holder, stack))


@task(help={"stack": STACK_HELP, "force": "remove the lock even while its task runs (on a host: stops its holder)"})
def unlock(c, stack="local", force=False):
    """Remove a stale deploy lock; --force removes any lock.

    On a host a deploy's lock is held by a process tied to its SSH session: when the deploy dies (killed,
    connection lost) the next deploy cleans up after it on its own, so `fab unlock` is rarely needed. A
    running task's lock is only removed with --force, which stops its holder (the task then stops at its
    next step). A lock file written by an older shipshape is stale when its pid is dead or it is hours old.

    Example: fab unlock --stack prod            (or: fab unlock --stack prod --force)
    """
    settings = load_or_exit(stack)
    if settings.is_cloud:
        with cloud_target(settings) as t:
            _unlock(stack, t.read_state().lock, force, lambda holder: t.break_lock(holder.raw))
        return
    layout = layout_for(settings)
    with host_runner(settings) as runner:
        _unlock(stack, locking.status(runner, layout), force,
                lambda holder: runner.run(locking.break_command(layout, holder)))


def _unlock(stack: str, holder, force: bool, remove) -> None:
    if holder is None:
        print(f"stack {stack} is not locked")
        return
    stale = holder.stale_reason()
    if not stale and not force:
        fail(locking.describe(holder, stack) + "\nit may still be running: pass --force if you are sure")
    with step(f"remove the lock held by {holder.who} ({holder.task})"):
        remove(holder)
        info(f"it was {stale}" if stale else "forced")
