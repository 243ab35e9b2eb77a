"""PM2 as the slot runtime: one PM2 process per slot, named `{app}-{slot}`, run as the app user.

PM2 runs without systemd: the first `pm2` command starts its daemon ("God") as the calling user, under
PM2_HOME. Every command goes through `runuser -u USER -- env -i ... pm2 ...` so the daemon and the app
get a clean, known environment (PM2 merges the CLI's environment into the app's) and never root's.

Any app, as written: the stack's start command runs under `/bin/sh -c` in the release directory, with
the release's dependencies first on PATH (shipshape.runtimes.kinds: a venv's bin, node_modules/.bin).

Secrets stay off command lines and out of PM2's own state (`pm2 jlist` prints every env var it
passed): each slot's ecosystem file holds only PORT, RELEASE_ID, GIT_SHA and PATH, and the process
starts through a tiny launcher (the host's python3, stdlib only) that reads the release's env file and
shared/secrets.env (KEY=value lines) into its environment, sends stderr to stdout (one log), and then
execs the command in place, so PM2's signals reach the app itself.
"""
from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from shipshape.layout import Layout
from shipshape.remote import Command, Script
from shipshape.runtimes import READ_ENV_FILES, ProcessState, Release, Slot, release_env_command
from shipshape.runtimes.kinds import KINDS, PATH

# argv: -c LAUNCHER ENV_FILE... -- COMMAND...; values already set (PORT, RELEASE_ID, ...) win over the
# files, and the first file naming a key wins over later ones. A missing file is skipped.
LAUNCHER = READ_ENV_FILES + (
    "import os, sys\n"
    "args = sys.argv[1:]\n"
    "cut = args.index('--')\n"
    "read_env_files(args[:cut], os.environ)\n"
    "os.dup2(1, 2)\n"
    "os.execvp(args[cut + 1], args[cut + 1:])\n"
)
PYTHON = "/usr/bin/python3"  # readable by every user (a root pyenv shim is not)
HEREDOC = "SHIPSHAPE_PM2_ECOSYSTEM"
SHELL_OPERATORS = set("();<>|&")


def shell(command: str) -> list[str]:
    """`/bin/sh -c COMMAND`, with `exec` in front when it is one simple command, so the app replaces the
    shell and receives PM2's signals itself (dash does not exec a -c command's last process)."""
    try:
        lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
        words = list(lexer)
    except ValueError as error:
        raise ValueError(f"command {command!r}: {error}") from None
    if not words:
        raise ValueError("command is empty")
    simple = "=" not in words[0] and not any(set(w) <= SHELL_OPERATORS for w in words) and "\n" not in command
    return ["/bin/sh", "-c", f"exec {command}" if simple else command]


@dataclass(frozen=True)
class Pm2:
    """Command builders for one app's slots under PM2."""

    app: str
    user: str
    layout: Layout
    start_command: str
    shared_dirs: tuple[str, ...] = ()
    kill_timeout_ms: int = 25_000  # > uvicorn's --timeout-graceful-shutdown 20: let requests drain

    @classmethod
    def for_stack(cls, stack, layout) -> "Pm2":
        return cls(app=stack.app.name, user=stack.host.app_user, layout=layout,
                   start_command=stack.app.start, shared_dirs=stack.app.shared_dirs)

    @property
    def home(self) -> str:
        return self.layout.pm2_home

    def process_name(self, slot: Slot | str) -> str:
        return f"{self.app}-{slot.name if isinstance(slot, Slot) else slot}"

    def ecosystem_path(self, slot: Slot | str) -> str:
        return f"{self.home}/{self.process_name(slot)}.ecosystem.json"

    def log_path(self, slot: Slot | str) -> str:
        return f"{self.layout.logs}/{self.process_name(slot)}.log"

    def pm2(self, *args: str) -> list[str]:
        """`pm2 ARGS` as the app user, with PM2_HOME and a clean environment."""
        # PM2_KILL_SIGNAL is read by the daemon when it starts: the contract's graceful stop is SIGTERM.
        # -C: over SSH the cwd is root's home (0700) and node's spawn fails there with EACCES.
        return ["runuser", "-u", self.user, "--", "env", "-i", "-C", self.home, f"HOME={self.home}",
                f"PATH={PATH}", f"PM2_HOME={self.home}", "PM2_KILL_SIGNAL=SIGTERM", "pm2", *args]

    def _launch(self, release: Release, command: str) -> list[str]:
        return [PYTHON, "-c", LAUNCHER, self.layout.release_env(release.id), self.layout.secrets_env, "--",
                *shell(command)]

    def _path(self, release: Release) -> str:
        return KINDS[release.kind].path(self.layout, release.dir, release.deps_hash)

    def prepare(self, release: Release) -> list[Command]:
        """Dependencies, shared dirs linked in, and stdin (KEY=value lines) as the release's env file."""
        q = shlex.quote
        commands: list[Command] = [
            release_env_command(self.layout, release, owner=self.user),
            *KINDS[release.kind].install(self.layout, release.dir, release.deps_hash),
        ]
        for name in self.shared_dirs:
            shared, inside = self.layout.shared_dir(name), f"{release.dir}/{name}"
            commands += [["install", "-d", "-m", "750", "-o", self.user, "-g", self.user, shared],
                         Script(f"rm -rf {q(inside)} && mkdir -p {q(inside.rsplit('/', 1)[0])} "
                                f"&& ln -sfn {q(shared)} {q(inside)}")]
        return commands

    def export_static(self, release: Release, static_dir: str, dest: str) -> list[Command]:
        """The release's `static_dir` as unpacked, copied to `dest` (mtimes kept: nginx's ETags and
        Last-Modified); symbolic links are copied as links, not followed."""
        q, source = shlex.quote, f"{release.dir}/{static_dir}"
        return [Script(f"if [ ! -d {q(source)} ]; then echo \"shipshape:app.static.dir = {static_dir}: "
                       f"no such directory in releases/{release.id}\" >&2; exit 1; fi"),
                ["mkdir", dest],
                ["cp", "-R", "--preserve=timestamps", f"{source}/.", dest]]

    def run_once(self, release: Release, command: str) -> Command:
        """As the app user in the release directory; the caller's exported variables pass through."""
        return ["runuser", "-u", self.user, "--", "env", "-C", release.dir, f"PATH={self._path(release)}",
                f"RELEASE_ID={release.id}", f"GIT_SHA={release.git_sha}", *self._launch(release, command)]

    def ecosystem(self, slot: Slot) -> dict:
        """The PM2 app definition for a slot (no secrets: see the module docstring)."""
        release = slot.release
        return {"apps": [{
            "name": self.process_name(slot),
            "script": PYTHON,
            "interpreter": "none",
            "args": self._launch(release, self.start_command)[1:],
            "cwd": release.dir,
            "env": {"PORT": str(slot.port), "RELEASE_ID": release.id, "GIT_SHA": release.git_sha,
                    "PATH": self._path(release)},
            "out_file": self.log_path(slot),
            "error_file": self.log_path(slot),
            "kill_timeout": self.kill_timeout_ms,
            "autorestart": True,
            "max_restarts": 10,
            "min_uptime": 5000,
        }]}

    def start(self, slot: Slot) -> list[Command]:
        """Replace the slot's process with one running `slot`'s release: one round trip via run_all."""
        path, log = self.ecosystem_path(slot), self.log_path(slot)
        text = json.dumps(self.ecosystem(slot), indent=2)
        return [
            ["install", "-d", "-o", self.user, "-m", "0700", self.home],
            Script(f"cat > {shlex.quote(path)} <<'{HEREDOC}'\n{text}\n{HEREDOC}"),
            # Replacing, not reloading: a reload keeps the old script/cwd, and the slot takes no
            # traffic while it is being started, so delete + start is safe and exact.
            self._if_known(slot, "delete"),
            # The slot's log starts with this release (the previous one's is kept as .1).
            Script(f"if [ -f {shlex.quote(log)} ]; then mv -f {shlex.quote(log)} {shlex.quote(log + '.1')}; fi"),
            self.pm2("start", path),
        ]

    def stop(self, slot: Slot | str) -> list[Command]:
        """SIGTERM, wait up to kill_timeout for in-flight requests, then SIGKILL; nothing if not running."""
        return [self._if_known(slot, "stop")]

    def _if_known(self, slot: Slot | str, action: str) -> Script:
        name = self.process_name(slot)
        describe = shlex.join(self.pm2("describe", name))
        act = shlex.join(self.pm2(action, name))
        return Script(f"if {describe} >/dev/null 2>&1; then {act} >/dev/null; fi")

    def log_tail(self, slot: Slot | str, lines: int) -> Command:
        return Script(f"tail -n {int(lines)} {shlex.quote(self.log_path(slot))} 2>/dev/null || true")

    def status_command(self) -> Command:
        """`pm2 jlist`; `[]` when PM2_HOME does not exist yet (nothing was ever started)."""
        home = shlex.quote(self.home)
        return Script(f"if [ -d {home} ]; then {shlex.join(self.pm2('jlist'))}; else echo '[]'; fi")

    @property
    def status_guard(self) -> str:
        """A pid file that must name a live process before `status_command` may run (it would spawn PM2)."""
        return f"{self.home}/pm2.pid"

    def ship(self, runner, artifact, log) -> str:
        return ""  # the artifact is all a PM2 host needs

    def forget(self, release_ids: list[str]) -> list[Command]:
        return []  # dependency dirs are shared by lockfile hash, not owned by a release

    def save(self) -> list[Command]:
        """`pm2 save`: the process list (both slots, a stopped one stays stopped) into PM2_HOME/dump.pm2,
        which `pm2 resurrect` starts again at boot (systemd unit) or in `fab setup` (shipshape.provision)."""
        # Detached: the PM2 client takes ~0.4 s, which a rollback must not wait for (docs/deploy.md); it never
        # fails the change it follows (traffic has moved, slots.json is written), and a failure is logged.
        log = shlex.quote(f"{self.layout.logs}/pm2-save.log")
        save = (f"{shlex.join(self.pm2('save'))} >/dev/null 2>&1 || "
                f"echo \"$(date -u +%FT%TZ) pm2 save failed: a reboot brings back the processes last saved\" >> {log}")
        return [Script(f"nohup sh -c {shlex.quote(save)} >/dev/null 2>&1 </dev/null &")]

    def parse_status(self, stdout: str) -> dict[str, ProcessState]:
        """{slot: ProcessState} from `pm2 jlist` (other apps under the same PM2 are ignored)."""
        states = {}
        for proc in _jlist(stdout):
            name = proc.get("name", "")
            prefix, _, slot = name.rpartition("-")
            if prefix != self.app:
                continue
            env = proc.get("pm2_env", {})
            online = env.get("status") == "online"
            pid = proc.get("pid") if online else None
            states[slot] = ProcessState(
                name=name, online=online, pid=pid or None,
                restarts=int(env.get("restart_time", 0)),
                release=(env.get("env") or {}).get("RELEASE_ID") or env.get("RELEASE_ID"))
        return states


def _jlist(stdout: str) -> list[dict]:
    # PM2 may print notices ("[PM2] Spawning PM2 daemon ...") before its one-line JSON array.
    for line in reversed(stdout.splitlines()):
        if line.startswith("["):
            try:
                return json.loads(line)
            except ValueError:
                continue
    raise ValueError(f"no process list in `pm2 jlist` output: {stdout.strip()[:200]!r}")
