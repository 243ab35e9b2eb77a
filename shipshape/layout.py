"""Where things live on a host. Every module builds paths from here, never by hand.

    {root}/releases/<release>/     unpacked app code; <release> = <UTC yyyymmddHHMMSS>-<sha12>
    {root}/artifacts/<sha>.tar.gz  the build for one git sha (built once, shipped to every stack)
    {root}/venvs/<hash>/           Python environments, one per requirements.txt hash
    {root}/npm/<hash>/             node_modules of Node apps, one per package-lock.json hash
    {root}/shared/secrets.env      generated secrets, mode 600, owned by the app user
    {root}/shared/<dir>/           shipshape:app.shared_dirs, linked into every release (app user's)
    {root}/backups/<id>.dump       pg_dump -Fc archives
    {root}/state/                  slots.json (which release runs in which slot, weights), lock, history.jsonl,
                                   accounts.fingerprint (root's, 600: the check accounts last created)
    {root}/nginx/                  nginx.conf (generated), access.log, pid
    {root}/acme/                   certbot's webroot for ACME http-01 challenges (shipshape:tls)
    {root}/static/<release>/       shipshape:app.static: a world-readable copy of the release's static dir
    {root}/static/slot-<a|b>       link to the copy the slot's release serves (nginx reads only these)
    {root}/logs/                   app and daemon logs
    {root}/pm2/                    PM2_HOME for the app user
"""
from __future__ import annotations

from dataclasses import dataclass

SLOTS = ("a", "b")


def other(slot: str) -> str:
    """The slot that is not `slot`."""
    return SLOTS[1 - SLOTS.index(slot)]


@dataclass(frozen=True)
class Layout:
    root: str

    def _join(self, *parts: str) -> str:
        return "/".join((self.root.rstrip("/"), *parts))

    @property
    def releases(self) -> str:
        return self._join("releases")

    def release(self, release_id: str) -> str:
        return self._join("releases", release_id)

    @property
    def artifacts(self) -> str:
        return self._join("artifacts")

    def artifact(self, sha: str) -> str:
        return self._join("artifacts", f"{sha}.tar.gz")

    @property
    def venvs(self) -> str:
        return self._join("venvs")

    @property
    def node_deps(self) -> str:
        return self._join("npm")

    @property
    def shared(self) -> str:
        return self._join("shared")

    def shared_dir(self, name: str) -> str:
        return self._join("shared", name)

    def release_env(self, release_id: str) -> str:
        """The release's own env file (stack env, secret_env, the app's shipshape.env), mode 600."""
        return self._join("releases", release_id, ".shipshape.env")

    @property
    def secrets_env(self) -> str:
        return self._join("shared", "secrets.env")

    @property
    def backups(self) -> str:
        return self._join("backups")

    @property
    def state(self) -> str:
        return self._join("state")

    @property
    def slots_file(self) -> str:
        return self._join("state", "slots.json")

    @property
    def lock_file(self) -> str:
        return self._join("state", "lock")

    @property
    def canary_control(self) -> str:
        """`fab canary promote|resume|abort` writes here; the paused deploy reads and removes it."""
        return self._join("state", "canary-control")

    @property
    def history_file(self) -> str:
        return self._join("state", "history.jsonl")

    @property
    def accounts_fingerprint(self) -> str:
        return self._join("state", "accounts.fingerprint")

    @property
    def nginx(self) -> str:
        return self._join("nginx")

    @property
    def nginx_conf(self) -> str:
        return self._join("nginx", "nginx.conf")

    @property
    def acme_webroot(self) -> str:
        """Served at /.well-known/acme-challenge/ over plain HTTP: `certbot certonly --webroot -w` this.

        Not under nginx/: that is the app user's (750) and nginx's workers (nobody) must read this.
        """
        return self._join("acme")

    @property
    def static(self) -> str:
        """Copies of releases' static dirs (shipshape:app.static) that nginx serves itself.

        Not under releases/: that is the app user's (750) and nginx's workers (nobody) must read this.
        """
        return self._join("static")

    def static_copy(self, release_id: str) -> str:
        """The release's static dir, copied world-readable (dirs 755, files 644)."""
        return self._join("static", release_id)

    def static_slot(self, slot: str) -> str:
        """A link to the static copy of the release the slot runs, switched when the slot starts one."""
        return self._join("static", f"slot-{slot}")

    @property
    def access_log(self) -> str:
        return self._join("nginx", "access.log")

    @property
    def logs(self) -> str:
        return self._join("logs")

    @property
    def pm2_home(self) -> str:
        return self._join("pm2")

    def directories(self) -> tuple[str, ...]:
        return (self.releases, self.artifacts, self.venvs, self.node_deps, self.shared, self.backups, self.state,
                self.nginx, self.logs, self.pm2_home)


def layout_for(stack) -> Layout:
    """The layout of a stack's host (`shipshape:host.root`)."""
    return Layout(stack.host.root)
