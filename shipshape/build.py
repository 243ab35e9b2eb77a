"""`fab build`: one artifact per git sha, in the git-ignored .build/<id>.tar.gz, shipped to every stack.

The artifact is the app directory (`shipshape:app.repo`) at HEAD, plus what `shipshape:app.build`
produced when run in a clean export of it (e.g. `npm ci && npm run build` writes dist/), plus a RELEASE
manifest (JSON: id, sha, commit time, app kind, dependency hash). node_modules never ships: the host
installs dependencies from the lockfile. A dirty app directory is refused, naming the files, unless
allowed; then the working tree is packed and the id says so (`<sha>-dirty-<content hash>`).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
import tempfile
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from shipshape.runtimes.kinds import detect

MANIFEST = "RELEASE"
OVERRIDE_FILE = "shipshape.env"
NEVER_SHIPPED = ("node_modules", ".git")
BUILD_TAIL = 30


class BuildError(Exception):
    """The tree cannot be built as asked (dirty, not a git repository, build command failed, ...)."""


@dataclass(frozen=True)
class Artifact:
    id: str
    sha: str
    committed: str
    kind: str
    deps_hash: str
    path: Path
    env_override: bool = False  # the app dir has OVERRIDE_FILE: extra env for this release's processes
    build: str = ""             # the shipshape:app.build command it was built with
    image: str = ""             # docker runtime: the image id built from this export (sha256:...)
    workdir: str = ""           # docker runtime: the image's working directory

    @property
    def name(self) -> str:
        return self.path.name

    def manifest(self) -> dict:
        return {"id": self.id, "sha": self.sha, "committed": self.committed, "kind": self.kind,
                "deps_hash": self.deps_hash, "env_override": self.env_override, "build": self.build,
                **({"image": self.image, "workdir": self.workdir} if self.image else {})}


def _git(app_dir: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(app_dir), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"git {' '.join(args)} in {app_dir}: {proc.stderr.strip()}")
    return proc.stdout


def dirty_files(app_dir: Path) -> list[str]:
    """Uncommitted or untracked files in the app directory (the only part of the repo that ships)."""
    out = _git(app_dir, "status", "--porcelain", "--untracked-files=all", "--", ".")
    return [line[3:] for line in out.splitlines() if line.strip()]


Members = dict[str, tuple[bytes, int]]  # path -> (content, mode)


def _members(app_dir: Path, dirty: bool) -> Members:
    """The committed tree at HEAD, or the working tree's tracked + untracked files."""
    if not dirty:
        prefix = _git(app_dir, "rev-parse", "--show-prefix").strip()
        top = _git(app_dir, "rev-parse", "--show-toplevel").strip()  # archive refuses to run from a subdir
        raw = subprocess.run(["git", "-C", top, "archive", "--format=tar", f"HEAD:{prefix}"],
                             capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            return {m.name: (tar.extractfile(m).read(), m.mode) for m in tar.getmembers() if m.isfile()}
    names = _git(app_dir, "ls-files", "-co", "--exclude-standard", "--", ".").splitlines()
    return {name: ((app_dir / name).read_bytes(), (app_dir / name).stat().st_mode)
            for name in names if (app_dir / name).is_file()}


def artifact_id(sha: str, members: Members | None) -> str:
    """The sha, or for a dirty tree the sha plus a hash of what was packed."""
    if members is None:
        return sha
    digest = hashlib.sha256(b"".join(k.encode() + v for k, (v, _) in sorted(members.items()))).hexdigest()
    return f"{sha}-dirty-{digest[:8]}"


def write_tree(root: Path, members: Members) -> None:
    """Write `members` under `root` as files (a clean export)."""
    for name, (data, mode) in members.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode & 0o777 or 0o644)


def run_logged(argv: list[str], cwd: Path, log, what: str, env: dict | None = None) -> None:
    """Run argv in cwd, each output line to `log` as it comes; BuildError with the last lines on failure."""
    tail: deque[str] = deque(maxlen=BUILD_TAIL)
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})})
    for line in proc.stdout:
        tail.append(line.rstrip())
        log(line.rstrip())
    if proc.wait() != 0:
        raise BuildError(f"{what} exited {proc.returncode}; last lines:\n  " + "\n  ".join(tail))


def run_build(members: Members, command: str, log=print) -> Members:
    """Run `command` in a clean export of `members`; returns everything it left (but node_modules)."""
    with tempfile.TemporaryDirectory(prefix="shipshape-build-") as tmp:
        root = Path(tmp)
        write_tree(root, members)
        run_logged(["sh", "-c", command], root, log, f"shipshape:app.build `{command}`", {"CI": "true"})
        return _read_tree(root)


def _read_tree(root: Path) -> Members:
    found = {}
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = [d for d in subdirs if d not in NEVER_SHIPPED]
        for name in files:
            path = Path(directory) / name
            if path.is_file() and not path.is_symlink():
                found[str(path.relative_to(root))] = (path.read_bytes(), path.stat().st_mode)
    return found


def build(app_dir: Path, out_dir: Path, allow_dirty: bool = False, command: str = "",
          kind: str | None = None, log=print, images=None) -> tuple[Artifact, bool]:
    """Build (or find) the artifact for HEAD; returns (artifact, built_now).

    `images` (docker runtime: shipshape.runtimes.docker.LocalImages) also makes the app's image from
    the same export, recorded in the manifest; an artifact whose image the local engine lacks is rebuilt.
    """
    dirty = dirty_files(app_dir)
    if dirty and not allow_dirty:
        raise BuildError(f"{app_dir} has uncommitted changes (commit them or pass --allow-dirty): "
                         + ", ".join(dirty[:10]) + (" ..." if len(dirty) > 10 else ""))
    sha = _git(app_dir, "rev-parse", "HEAD").strip()
    committed = _git(app_dir, "log", "-1", "--format=%cI", "HEAD").strip()
    members = _members(app_dir, bool(dirty))
    path = out_dir / f"{artifact_id(sha, members if dirty else None)}.tar.gz"
    if path.exists():
        existing = read_manifest(path)
        if existing.build == command and (images is None or (existing.image and images.exists(existing.image))):
            return existing, False
    try:
        app_kind = detect(set(members), kind, str(app_dir))
        kind_name, deps_hash = app_kind.name, app_kind.deps_hash({name: data for name, (data, _) in members.items()})
    except ValueError as error:
        if images is None:
            raise BuildError(str(error)) from None
        kind_name, deps_hash = "image", ""  # any language: the image carries its own dependencies
    shipped = run_build(members, command, log) if command else members
    artifact_name = path.name.removesuffix(".tar.gz")
    image, workdir = images.build(shipped, artifact_name, log) if images else ("", "")
    artifact = Artifact(id=artifact_name, sha=sha, committed=committed, kind=kind_name, deps_hash=deps_hash,
                        path=path, env_override=OVERRIDE_FILE in shipped, build=command, image=image,
                        workdir=workdir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shipped[MANIFEST] = (json.dumps(artifact.manifest(), indent=2).encode() + b"\n", 0o644)
    _write(path, shipped)
    return artifact, True


def _write(path: Path, members: Members) -> None:
    tmp = path.with_suffix(".tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for name, (data, mode) in sorted(members.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755 if mode & 0o111 else 0o644
            tar.addfile(info, io.BytesIO(data))
    tmp.rename(path)  # atomic: a half-written artifact never looks built


def read_manifest(path: Path) -> Artifact:
    """The artifact an existing .tar.gz holds (manifests before app kinds were Python's)."""
    with tarfile.open(path) as tar:
        data = json.loads(tar.extractfile(MANIFEST).read())
    return Artifact(id=data["id"], sha=data["sha"], committed=data["committed"], kind=data.get("kind", "python"),
                    deps_hash=data.get("deps_hash") or data.get("requirements_hash", ""), path=path,
                    env_override=data.get("env_override", False), build=data.get("build", ""),
                    image=data.get("image", ""), workdir=data.get("workdir", ""))
