"""Image shipping against two real engines (tests/support/dockerd.py): a local Runner, and test images.

`LocalConnection` stands in for Fabric's Connection: `run` hands the text to `sh -c` on this machine
(a POSIX shell, as on a Debian host) and `put` copies the file, so `shipshape.remote.Runner` drives
the "host" engine with no SSH. Images are small and made here: a base imported from a tarball of a few
files (random bytes, so each run's layers are new to both engines), apps built FROM it with COPY
layers. Every image a test makes is removed from both engines at the end of the module.
"""
from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest

from shipshape.remote import Runner

REPO = "shipshape-test-images"


@dataclass
class LocalConnection:
    """Fabric's `run(text, hide, warn, in_stream)` and `put(local, remote)`, on this machine."""

    env: dict[str, str] | None = None
    commands: list[str] = field(default_factory=list)

    def run(self, text, hide=True, warn=True, in_stream=None):
        self.commands.append(text)
        stdin = in_stream.read() if in_stream else None
        proc = subprocess.run(["sh", "-c", text], input=stdin, capture_output=True, text=True,
                              env=self.env, timeout=300)
        return SimpleNamespace(stdout=proc.stdout, stderr=proc.stderr, return_code=proc.returncode)

    def put(self, local, remote):
        shutil.copyfile(local, remote)


def path_without(tmp: Path, *names: str) -> str:
    """A PATH with every command of this one but `names` (a host without zstd, say)."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        for entry in Path(directory).glob("*") if Path(directory).is_dir() else ():
            if entry.name not in names and not (bin_dir / entry.name).exists():
                (bin_dir / entry.name).symlink_to(entry)
    return str(bin_dir)


@pytest.fixture
def runner():
    return Runner(LocalConnection())


@dataclass
class Images:
    """Makes test images on the build engine; `cleanup` removes them (and their copies) from both."""

    build: object
    host: object
    tmp: Path
    run: str = field(default_factory=lambda: secrets.token_hex(4))
    made: list[str] = field(default_factory=list)

    def base(self, size: int = 300_000) -> str:
        """A base image of a few static files, one of them `size` random bytes; returns its tag."""
        tag = self.tag_name("base")
        root = self.tmp / tag.replace("/", "_").replace(":", "_")
        (root / "etc").mkdir(parents=True)
        (root / "etc" / "os-release").write_text(f"NAME=shipshape-test {tag}\n")
        (root / "blob").write_bytes(secrets.token_bytes(size))
        with tarfile.open(root.with_suffix(".tar"), "w") as tar:
            tar.add(root, arcname=".")
        self.build.cli("import", str(root.with_suffix(".tar")), tag)
        return tag

    def app(self, base: str, app_text: str, lib_text: str = "lib 1.0\n", extra: str = "") -> str:
        """`FROM base`, a lib layer, then an app layer (then `extra` Dockerfile lines): a release that
        differs from another only in `app_text`."""
        tag = self.tag_name("app")
        context = self.tmp / tag.replace("/", "_").replace(":", "_")
        context.mkdir()
        (context / "Dockerfile").write_text(f"FROM {base}\nCOPY lib.txt /lib.txt\nCOPY app.txt /app.txt\n{extra}")
        (context / "lib.txt").write_text(lib_text)
        (context / "app.txt").write_text(app_text)
        for name in ("lib.txt", "app.txt"):  # COPY keeps mtimes: equal files make equal layers
            os.utime(context / name, (1_700_000_000, 1_700_000_000))
        self.build.cli("build", "-q", "--network", "host", "-t", tag, str(context))
        return tag

    def id(self, engine, ref: str) -> str | None:
        proc = engine.cli("image", "inspect", "--format", "{{.Id}}", ref, check=False)
        return proc.stdout.strip() if proc.returncode == 0 else None

    def tag_name(self, kind: str) -> str:
        """A tag unique to this run, removed from both engines at the end."""
        tag = f"{REPO}/{kind}:{self.run}-{len(self.made)}"
        self.made.append(tag)
        return tag

    def cleanup(self) -> None:
        ids = {self.id(self.build, tag) for tag in self.made} - {None}
        for engine in (self.host, self.build):
            for ref in [*reversed(self.made), *ids]:
                engine.cli("rmi", "-f", ref, check=False)


@pytest.fixture(scope="module")
def images(docker_build, docker_host, tmp_path_factory):
    made = Images(docker_build, docker_host, tmp_path_factory.mktemp("images"))
    yield made
    made.cleanup()
