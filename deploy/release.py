"""Release tasks: build, deploy, rollback, migrate, restart, status (the flows live in shipshape/)."""
from __future__ import annotations

import signal
import sys
from contextlib import contextmanager

from fabric import task

from deploy.stackinfo import load_or_exit
from shipshape import build as builder
from shipshape import lock, rollback as flows
from shipshape.config import Runtime
from shipshape.gcp import GcpError
from shipshape.progress import info, step
from shipshape.release import deploy as deploy_flow
from shipshape.remote import RemoteError
from shipshape.runtimes.docker import LocalImages
from shipshape.secrets import SecretError
from shipshape.stackfile import find_root
from shipshape.targets import DeployFailed, NotSupported, ReleaseTarget, open_target

STACK = {"stack": "stack name: reads Pulumi.<stack>.yaml (default: local)"}


def _sigterm(*_):
    raise KeyboardInterrupt  # SIGTERM undoes the deploy exactly like Ctrl-C


@contextmanager
def failing_cleanly(task_name: str):
    """Turn failures into one masked line on stderr and a non-zero exit (no traceback)."""
    previous = signal.signal(signal.SIGTERM, _sigterm)
    try:
        yield
    except NotSupported as error:
        print(f"{task_name}: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except SecretError as error:
        print(f"{task_name} refused before touching the host: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except DeployFailed as error:
        print(f"{task_name} failed at step {error.step}: {error.reason}", file=sys.stderr)
        raise SystemExit(1) from None
    except lock.LockHeld as error:
        print(f"{task_name} refused: {error}", file=sys.stderr)
        raise SystemExit(3) from None
    except GcpError as error:
        print(f"{task_name} failed: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    except (RemoteError, builder.BuildError) as error:
        print(f"{task_name} failed: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def locked_target(task_name: str, stack: str):
    """The stack's target with its deploy lock held, failures reported cleanly."""
    with failing_cleanly(task_name):
        t = target(stack, with_secrets=False)
        with t.locked(task_name):
            yield t


def target(stack_name: str, with_secrets: bool = True) -> ReleaseTarget:
    """The stack's release target: config validated, secrets resolved, nothing on a host changed yet."""
    return open_target(load_or_exit(stack_name), find_root(), with_secrets=with_secrets)


def build_artifact(settings, allow_dirty: bool, sha: str | None):
    root = find_root()
    out = root / ".build"
    if sha:
        matches = sorted(out.glob(f"{sha}*.tar.gz"))
        if not matches:
            raise builder.BuildError(f"no artifact for sha {sha} in {out}; run `fab build` at that commit")
        return builder.read_manifest(matches[0])
    images = LocalImages.for_stack(settings) if settings.runtime is Runtime.docker or settings.is_cloud else None
    artifact, built = builder.build(root / settings.app.repo, out, allow_dirty, settings.app.build,
                                    settings.app.kind, log=info, images=images)
    info(f"{'built' if built else 'already built (no-op)'}: .build/{artifact.name}")
    return artifact


@task(help={**STACK, "allow-dirty": "pack uncommitted changes too (the id then says dirty)"})
def build(c, stack="local", allow_dirty=False):
    """Build the app once per git sha into .build/<sha>.tar.gz (the same artifact goes to every stack).

    On a docker stack also builds the image (shipshape:docker.dockerfile) with the local engine, tagged
    shipshape/<app>:<sha>. Runs shipshape:app.build (e.g. `npm ci && npm run build`) in a clean export of the commit and packs
    what it leaves (never node_modules). Refuses a dirty app directory, naming the files, unless --allow-dirty.
    Example: fab build
    """
    settings = load_or_exit(stack)
    with failing_cleanly("build"), step(f"build {settings.app.repo}"):
        build_artifact(settings, allow_dirty, None)


@task(help={**STACK, "allow-dirty": "deploy uncommitted changes (see fab build)",
            "sha": "deploy an artifact built earlier (prefix of its git sha) instead of HEAD",
            "pause-at": "hold the canary at this step (a percent of shipshape:canary.steps, below 100) until "
                        "`fab canary promote|resume|abort` from another terminal"})
def deploy(c, stack="local", allow_dirty=False, sha=None, pause_at=None):
    """Ship a release: lock, preflight, upload, migrate, start beside the live slot, canary, promote.

    Any failure or interruption puts traffic back on the old release and exits non-zero naming the step.
    With --pause-at 10 the canary waits at 10% (the gate still watching) for a person: `fab canary status`
    shows both slots' figures, `promote` ships now, `resume` goes on with the steps, `abort` undoes.
    On a Cloud Run stack the image goes to its registry, the migrate job runs it, and the new revision
    (tagged `candidate`, no traffic) takes the canary steps (docs/cloudrun.md).
    Example: fab deploy --stack local        (or: fab deploy --stack prod)
    """
    with failing_cleanly("deploy"):
        t = target(stack)
        pause = pause_percent(t.stack, pause_at)
        with step("build"):
            artifact = build_artifact(t.stack, allow_dirty, sha)
        release_id = deploy_flow(t, artifact, pause)
        if release_id:
            runner = getattr(t, "runner", None)
            info(f"deployed {release_id}" + (f" in {runner.count} SSH round trips" if runner else ""))


def pause_percent(stack, pause_at) -> int | None:
    """--pause-at, checked before anything happens: one of the stack's canary steps below 100, on a host."""
    if pause_at in (None, ""):
        return None
    steps = [s for s in stack.canary.steps if s < 100]
    try:
        percent = int(str(pause_at).rstrip("%"))
    except ValueError:
        percent = None
    if percent not in steps:
        raise NotSupported(f"--pause-at {pause_at}: expected one of the canary steps below 100 in "
                           f"{stack.source} (shipshape:canary.steps): {', '.join(map(str, steps)) or 'none'}")
    if stack.is_cloud:
        raise NotSupported(f"--pause-at: {stack.source} is a Cloud Run stack; a paused canary is for host stacks "
                           "for now (docs/deploy.md)")
    return percent


@task(help={**STACK, "to": "a kept release id (see fab status); default: the previous release"})
def rollback(c, stack="local", to=None):
    """Serve the previous release (instant when its slot is warm) or any kept release with --to.

    Example: fab rollback --stack local --to 20261121120000-0123456789ab
    """
    with locked_target("rollback", stack) as t:
        flows.rollback(t, t.read_state(), to)


@task(help=STACK)
def restart(c, stack="local"):
    """Restart the live release with zero downtime: start it in the idle slot, readiness, flip, stop old.

    Host stacks only: Cloud Run replaces instances itself (the task says what to run instead).

    Example: fab restart --stack local
    """
    with locked_target("restart", stack) as t:
        if t.stack.is_cloud:
            raise NotSupported(f"{t.stack.source}: Cloud Run replaces instances itself; for fresh ones, "
                               f"`gcloud run services update {t.stack.app.name} --region {t.stack.gcp.region}` "
                               "makes a new revision of the same image")
        flows.restart(t, t.read_state())


@task(help=STACK)
def migrate(c, stack="local"):
    """Run the app's migrate command (shipshape:app.migrate) from the live release, under the deploy lock.

    Example: fab migrate --stack local
    """
    with locked_target("migrate", stack) as t:
        state = t.read_state()
        release_id = state.slots.release(state.slots.live)
        if not release_id:
            raise DeployFailed("migrate", "nothing is deployed yet")
        with step(f"migrate {release_id}"):
            for line in t.migrate(t.release(state, release_id), state):
                info(line)


@task(help=STACK)
def status(c, stack="local"):
    """Show which release serves with which weight, the process (PM2), container (Docker) or Cloud Run revision, and the lock.

    Example: fab status --stack local
    """
    with failing_cleanly("status"):
        t = target(stack, with_secrets=False)
        for line in t.status_lines(t.read_state()):
            print(line)
