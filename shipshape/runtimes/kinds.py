"""App kinds a host runtime knows how to prepare: where a release's dependencies live and how they are made.

    kind = KINDS["node"]
    runner.run_all(kind.install(layout, release_dir, deps_hash))   # once per lockfile hash, reused after
    kind.bin_dir(layout, release_dir, deps_hash)                    # first on PATH for start/migrate

Dependencies are installed as root (the package mirrors are configured for root) into a directory named
after the lockfile hash; `.complete` marks a finished install, so an interrupted one is redone and never
half used. The app user only reads them.
"""
from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass

from shipshape.layout import Layout
from shipshape.remote import Command, Script

q = shlex.quote
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _once(directory: str, make: str) -> Script:
    """Run `make` (which fills `directory`) unless a finished copy exists; says created or reused."""
    return Script(f"if [ ! -f {q(directory + '/.complete')} ]; then rm -rf {q(directory)} && mkdir -p {q(directory)} "
                  f"&& {make} && touch {q(directory + '/.complete')} && echo 'dependencies installed'; "
                  f"else echo 'dependencies reused'; fi")


@dataclass(frozen=True)
class Kind:
    name: str
    lockfiles: tuple[str, ...]   # the files whose content decides the dependencies (hashed)
    marker: str                  # a file whose presence says "this is an app of this kind"

    def deps_hash(self, files: dict[str, bytes]) -> str:
        """Hash of the lockfiles as found in the app (missing ones count as empty)."""
        digest = hashlib.sha256()
        for name in self.lockfiles:
            digest.update(name.encode() + b"\0" + files.get(name, b"") + b"\0")
        return digest.hexdigest()[:16]

    def deps_dir(self, layout: Layout, deps_hash: str) -> str:
        return f"{layout.venvs}/{deps_hash}" if self.name == "python" else f"{layout.node_deps}/{deps_hash}"

    def install(self, layout: Layout, release_dir: str, deps_hash: str) -> list[Command]:
        deps = self.deps_dir(layout, deps_hash)
        if self.name == "python":
            pip = q(deps + "/bin/pip")
            return [_once(deps, f"/usr/bin/python3 -m venv {q(deps)} && {pip} install -q "
                                f"--disable-pip-version-check -r {q(release_dir + '/requirements.txt')}")]
        copy = " ".join(q(f"{release_dir}/{name}") for name in self.lockfiles)
        return [_once(deps, f"cp {copy} {q(deps)}/ && (cd {q(deps)} && npm ci --omit=dev --no-audit --no-fund "
                            f"--loglevel=error >/dev/null)"),
                # The release finds its packages where node looks first: ./node_modules.
                ["ln", "-sfn", f"{deps}/node_modules", f"{release_dir}/node_modules"]]

    def bin_dir(self, layout: Layout, release_dir: str, deps_hash: str) -> str:
        if self.name == "python":
            return self.deps_dir(layout, deps_hash) + "/bin"
        return f"{release_dir}/node_modules/.bin"

    def path(self, layout: Layout, release_dir: str, deps_hash: str) -> str:
        return f"{self.bin_dir(layout, release_dir, deps_hash)}:{PATH}"


KINDS = {
    "python": Kind("python", ("requirements.txt",), "requirements.txt"),
    "node": Kind("node", ("package.json", "package-lock.json"), "package-lock.json"),
}


def detect(files: set[str] | dict, configured: str | None, where: str) -> Kind:
    """The app's kind: `configured` (shipshape:app.kind), else from its files; ValueError says why not."""
    if configured:
        kind = KINDS[configured]
        if kind.marker not in files:
            raise ValueError(f"{where}: shipshape:app.kind is {configured} but the app has no {kind.marker}")
        return kind
    found = [kind for kind in KINDS.values() if kind.marker in files]
    if len(found) == 1:
        return found[0]
    if not found:
        hint = " (package.json without package-lock.json: run `npm install` and commit the lockfile)" \
            if "package.json" in files else ""
        raise ValueError(f"{where}: cannot tell the app's kind: expected requirements.txt (python) or "
                         f"package.json with package-lock.json (node){hint}; or set shipshape:app.kind")
    raise ValueError(f"{where}: the app has both requirements.txt and package-lock.json: "
                     "set shipshape:app.kind to python or node")
