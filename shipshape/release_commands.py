"""Host commands of a release, as data: unpack, static files, check accounts, readiness, prune.

Pure builders; the VPS target (shipshape/targets/vps.py) sends each group in one round trip.
Process details (dependencies, environment) belong to the runtime (shipshape/runtimes/).
"""
from __future__ import annotations

import shlex
import time

from shipshape.layout import SLOTS, Layout
from shipshape.remote import Command, Script, render

q = shlex.quote


def new_release_id(sha: str, dirty: bool = False, now: float | None = None) -> str:
    """`<UTC yyyymmddHHMMSS>-<sha12>[-dirty]` (docs/host-state.md): sorts by time."""
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(now))
    return f"{stamp}-{sha[:12]}" + ("-dirty" if dirty else "")


def unpack_command(layout: Layout, artifact_id: str, release_id: str) -> Command:
    """Unpack the artifact into releases/<id> via a temp dir: a release dir is always whole."""
    rel = layout.release(release_id)
    return Script(f"if [ ! -d {q(rel)} ]; then rm -rf {q(rel + '.tmp')} && mkdir -p {q(rel + '.tmp')} && "
                  f"tar -xzf {q(layout.artifact(artifact_id))} -C {q(rel + '.tmp')} && mv {q(rel + '.tmp')} {q(rel)}; fi")


def static_copy_commands(layout: Layout, runtime, release, static_dir: str) -> list[Command]:
    """shipshape:app.static: the runtime exports the release's static dir to a temp dir, made readable by
    nginx's workers (dirs 755, files 644, root's; anything else, symbolic links included, dropped: a link
    could reach outside the release), then moved into place as static/<release>."""
    copy, tmp = layout.static_copy(release.id), layout.static_copy(release.id) + ".tmp"
    return [["install", "-d", "-m", "755", layout.static], ["rm", "-rf", tmp],
            *runtime.export_static(release, static_dir, tmp),
            Script(f"find {q(tmp)} ! -type d ! -type f -delete && chown -R 0:0 {q(tmp)} "
                   f"&& find {q(tmp)} -type d -exec chmod 755 {{}} + && find {q(tmp)} -type f -exec chmod 644 {{}} + "
                   f"&& rm -rf {q(copy)} && mv -T {q(tmp)} {q(copy)}")]


def static_link_command(layout: Layout, slot: str, release_id: str) -> Command:
    """Point the slot's static link at the release's copy: a new link renamed over the old (atomic)."""
    link = layout.static_slot(slot)
    return Script(f"install -d -m 755 {q(layout.static)} && ln -sfn {q(release_id)} {q(link + '.new')} "
                  f"&& mv -T {q(link + '.new')} {q(link)}")


def accounts_command(runtime, release, create_account: str) -> Command:
    """For each stdin line `user role password`: the app's own create-account command, with the account in
    ACCOUNT_USERNAME / ACCOUNT_ROLE / ACCOUNT_PASSWORD (exported: never on a command line)."""
    # Read stdin first: once a step fails the shell exits, and unread stdin would break the channel.
    return Script("set -e\nACCOUNTS=$(cat)\n"
                  "while read -r ACCOUNT_USERNAME ACCOUNT_ROLE ACCOUNT_PASSWORD; do\n"
                  "  export ACCOUNT_USERNAME ACCOUNT_ROLE ACCOUNT_PASSWORD\n"
                  f"  {render(runtime.run_once(release, create_account))} 2>&1\n"
                  "done <<< \"$ACCOUNTS\"")


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


def prune_plan(existing: list[str], keep: int, protected: set[str]) -> list[str]:
    """Release ids to delete: all but the newest `keep`, never a protected one (serving, rollback target)."""
    ordered = sorted(existing, reverse=True)
    return [rid for rid in ordered[keep:] if rid not in protected]


def prune_command(layout: Layout, doomed: list[str]) -> Command:
    """Delete the doomed releases, then each static copy whose release is gone, unless a slot links to it."""
    static, gone = q(layout.static), "".join(f" {q(layout.release(rid))}" for rid in doomed)
    links = "".join(f" $(readlink {q(layout.static_slot(slot))} || true)" for slot in SLOTS)
    # A copy outlives its release only while a slot's link points at it (a failed deploy's slot keeps
    # the link it got at start); the next prune after the link moves deletes it.
    return Script((f"rm -rf{gone}\n" if doomed else "") +
                  f"if [ -d {static} ]; then (\n"
                  f"  cd {static}\n"
                  f"  linked=\"{links} \"\n"
                  "  for copy in *; do\n"
                  "    if [ -L \"$copy\" ] || [ ! -e \"$copy\" ]; then continue; fi\n"
                  "    case \"$linked\" in *\" $copy \"*) continue;; esac\n"
                  f"    if [ ! -d {q(layout.releases)}/\"$copy\" ]; then rm -rf -- \"$copy\"; fi\n"
                  "  done\n"
                  ") fi")
