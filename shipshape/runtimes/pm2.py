"""PM2 as the slot runtime: one PM2 process per slot, named `{app}-{slot}`, run as the app user.

PM2 runs without systemd: the first `pm2` command starts its daemon ("God") as the calling user, under
PM2_HOME. Every command goes through `runuser -u USER -- env -i ... pm2 ...` so the daemon and the app
get a clean, known environment (PM2 merges the CLI's environment into the app's) and never root's.

Secrets stay off command lines and out of PM2's own state (`pm2 jlist` prints every env var it
passed): each slot's ecosystem file holds only PORT, RELEASE_ID and GIT_SHA, and the process starts
through a tiny launcher that reads `layout.secrets_env` (KEY=value lines) into its environment and
then execs the real command in place, so `ps` shows `python -m uvicorn ...` and PM2 signals reach it.
"""
from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from shipshape.remote import Command, Script
from shipshape.runtimes import ProcessState, Slot

# argv: -c LAUNCHER ENV_FILE ARGS...; values already set (PORT, RELEASE_ID, GIT_SHA) win over the file.
LAUNCHER = (
    "import os, sys\n"
    "for line in open(sys.argv[1]).read().splitlines():\n"
    "    key, sep, value = line.strip().partition('=')\n"
    "    if sep and key and not key.startswith('#'):\n"
    "        os.environ.setdefault(key.strip(), value.strip())\n"
    "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])\n"
)
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HEREDOC = "SHIPSHAPE_PM2_ECOSYSTEM"


def app_args(start: str, port: int) -> list[str]:
    """Arguments after `python` for the app's start command, with $PORT filled in.

    "uvicorn app.main:app --port $PORT" -> ["-m", "uvicorn", "app.main:app", "--port", "8001"]
    """
    words = [w.replace("${PORT}", str(port)).replace("$PORT", str(port)) for w in shlex.split(start)]
    if not words:
        raise ValueError("app start command is empty")
    if words[0].split("/")[-1].startswith("python"):
        return words[1:]
    return ["-m", *words]


@dataclass(frozen=True)
class Pm2:
    """Command builders for one app's slots under PM2."""

    app: str
    user: str
    home: str
    env_file: str
    start_command: str
    kill_timeout_ms: int = 25_000  # > uvicorn's --timeout-graceful-shutdown 20: let requests drain

    @classmethod
    def for_stack(cls, stack, layout) -> "Pm2":
        return cls(app=stack.app.name, user=stack.host.app_user, home=layout.pm2_home,
                   env_file=layout.secrets_env, start_command=stack.app.start)

    def process_name(self, slot: Slot | str) -> str:
        return f"{self.app}-{slot.name if isinstance(slot, Slot) else slot}"

    def ecosystem_path(self, slot: Slot | str) -> str:
        return f"{self.home}/{self.process_name(slot)}.ecosystem.json"

    def pm2(self, *args: str) -> list[str]:
        """`pm2 ARGS` as the app user, with PM2_HOME and a clean environment."""
        # PM2_KILL_SIGNAL is read by the daemon when it starts: the contract's graceful stop is SIGTERM.
        # -C: over SSH the cwd is root's home (0700) and node's spawn fails there with EACCES.
        return ["runuser", "-u", self.user, "--", "env", "-i", "-C", self.home, f"HOME={self.home}",
                f"PATH={PATH}", f"PM2_HOME={self.home}", "PM2_KILL_SIGNAL=SIGTERM", "pm2", *args]

    def ecosystem(self, slot: Slot) -> dict:
        """The PM2 app definition for a slot (no secrets: see the module docstring)."""
        return {"apps": [{
            "name": self.process_name(slot),
            "script": f"{slot.venv}/bin/python",
            "interpreter": "none",
            "args": ["-c", LAUNCHER, self.env_file, *app_args(self.start_command, slot.port)],
            "cwd": slot.release_dir,
            "env": {"PORT": str(slot.port), "RELEASE_ID": slot.release_id, "GIT_SHA": slot.git_sha},
            "kill_timeout": self.kill_timeout_ms,
            "autorestart": True,
            "max_restarts": 10,
            "min_uptime": 5000,
        }]}

    def start(self, slot: Slot) -> list[Command]:
        """Replace the slot's process with one running `slot`'s release: one round trip via run_all."""
        path = self.ecosystem_path(slot)
        text = json.dumps(self.ecosystem(slot), indent=2)
        return [
            ["install", "-d", "-o", self.user, "-m", "0700", self.home],
            Script(f"cat > {shlex.quote(path)} <<'{HEREDOC}'\n{text}\n{HEREDOC}"),
            # Replacing, not reloading: a reload keeps the old script/cwd, and the slot takes no
            # traffic while it is being started, so delete + start is safe and exact.
            self._if_known(slot, "delete"),
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

    def status_command(self) -> Command:
        """`pm2 jlist`; `[]` when PM2_HOME does not exist yet (nothing was ever started)."""
        home = shlex.quote(self.home)
        return Script(f"if [ -d {home} ]; then {shlex.join(self.pm2('jlist'))}; else echo '[]'; fi")

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
