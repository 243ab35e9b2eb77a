"""`fab build`: one artifact per git sha, in the git-ignored .build/<id>.tar.gz, shipped to every stack.

The artifact is the app directory (`shipshape:app.repo`) at HEAD plus a RELEASE manifest (JSON: id,
sha, commit time, requirements hash). A dirty app directory is refused, naming the files, unless
allowed; then the working tree is packed and the id says so (`<sha>-dirty-<content hash>`).
"""
from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

MANIFEST = "RELEASE"
REQUIREMENTS = "requirements.txt"
OVERRIDE_FILE = "shipshape.env"


class BuildError(Exception):
    """The tree cannot be built as asked (dirty, not a git repository, ...)."""


@dataclass(frozen=True)
class Artifact:
    id: str
    sha: str
    committed: str
    requirements_hash: str
    path: Path
    env_override: bool = False  # the app dir has OVERRIDE_FILE: extra env for this release's processes

    @property
    def name(self) -> str:
        return self.path.name


def _git(app_dir: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(app_dir), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"git {' '.join(args)} in {app_dir}: {proc.stderr.strip()}")
    return proc.stdout


def dirty_files(app_dir: Path) -> list[str]:
    """Uncommitted or untracked files in the app directory (the only part of the repo that ships)."""
    out = _git(app_dir, "status", "--porcelain", "--untracked-files=all", "--", ".")
    return [line[3:] for line in out.splitlines() if line.strip()]


def _members(app_dir: Path, dirty: bool) -> dict[str, bytes]:
    """Path -> content: the committed tree at HEAD, or the working tree's tracked + untracked files."""
    if not dirty:
        prefix = _git(app_dir, "rev-parse", "--show-prefix").strip()
        top = _git(app_dir, "rev-parse", "--show-toplevel").strip()  # archive refuses to run from a subdir
        raw = subprocess.run(["git", "-C", top, "archive", "--format=tar", f"HEAD:{prefix}"],
                             capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    names = _git(app_dir, "ls-files", "-co", "--exclude-standard", "--", ".").splitlines()
    return {name: (app_dir / name).read_bytes() for name in names if (app_dir / name).is_file()}


def artifact_id(sha: str, members: dict[str, bytes] | None) -> str:
    """The sha, or for a dirty tree the sha plus a hash of what was packed."""
    if members is None:
        return sha
    digest = hashlib.sha256(b"".join(k.encode() + v for k, v in sorted(members.items()))).hexdigest()
    return f"{sha}-dirty-{digest[:8]}"


def build(app_dir: Path, out_dir: Path, allow_dirty: bool = False) -> tuple[Artifact, bool]:
    """Build (or find) the artifact for HEAD; returns (artifact, built_now)."""
    dirty = dirty_files(app_dir)
    if dirty and not allow_dirty:
        raise BuildError(f"{app_dir} has uncommitted changes (commit them or pass --allow-dirty): "
                         + ", ".join(dirty[:10]) + (" ..." if len(dirty) > 10 else ""))
    sha = _git(app_dir, "rev-parse", "HEAD").strip()
    committed = _git(app_dir, "log", "-1", "--format=%cI", "HEAD").strip()
    members = _members(app_dir, bool(dirty))
    ident = artifact_id(sha, members if dirty else None)
    path = out_dir / f"{ident}.tar.gz"
    if path.exists():
        return read_manifest(path), False
    manifest = {"id": ident, "sha": sha, "committed": committed,
                "requirements_hash": hashlib.sha256(members.get(REQUIREMENTS, b"")).hexdigest()[:16],
                "env_override": OVERRIDE_FILE in members}
    out_dir.mkdir(parents=True, exist_ok=True)
    members[MANIFEST] = json.dumps(manifest, indent=2).encode() + b"\n"
    _write(path, members)
    return Artifact(path=path, **manifest), True


def _write(path: Path, members: dict[str, bytes]) -> None:
    tmp = path.with_suffix(".tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for name, data in sorted(members.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    tmp.rename(path)  # atomic: a half-written artifact never looks built


def read_manifest(path: Path) -> Artifact:
    with tarfile.open(path) as tar:
        data = json.loads(tar.extractfile(MANIFEST).read())
    return Artifact(path=path, **data)
