"""shipshape.baseimage and shipshape.rootfs without an engine: sources parsing, commands, the CLI's errors."""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shipshape import baseimage, rootfs

REPO = Path(__file__).resolve().parents[2]
NO_ENGINE = "unix:///nonexistent/docker.sock"

SOURCES = [
    ("deb http://mirror.example/debian bookworm main\n", {"bookworm": "http://mirror.example/debian"}),
    ("deb [arch=amd64 signed-by=/k.gpg] http://m.example/debian bookworm main\n"
     "# deb http://commented.example/debian bookworm main\n", {"bookworm": "http://m.example/debian"}),
    ("deb-src http://src.example/debian bookworm main\n", {}),
    ("Types: deb\n# a comment\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\n"
     "Components: main\n\nTypes: deb\nURIs: http://deb.debian.org/debian-security\n"
     "Suites: bookworm-security\nComponents: main\n",
     {"bookworm": "http://deb.debian.org/debian", "bookworm-updates": "http://deb.debian.org/debian",
      "bookworm-security": "http://deb.debian.org/debian-security"}),
    ("Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n", {}),
]


@pytest.mark.parametrize("text, expected", SOURCES)
def test_apt_mirrors(text, expected):
    assert rootfs.apt_mirrors([text]) == expected


def test_host_mirrors_fall_back_to_deb_debian_org(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text("deb https://packages.example/apt cloud-sdk main\n")
    assert rootfs.host_mirrors(tmp_path) == rootfs.FALLBACK_MIRRORS


def test_host_mirrors_read_deb822_files(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(SOURCES[3][0].replace("deb.debian", "m.local"))
    assert rootfs.host_mirrors(tmp_path) == {"bookworm": "http://m.local.org/debian",
                                            "bookworm-security": "http://m.local.org/debian-security"}


def test_commands():
    root, cache = Path("/c/.rootfs-x/rootfs"), Path("/c/base.tar.zst")
    assert rootfs.debootstrap_command(root, "http://m/debian") == [
        "debootstrap", "--variant=minbase", "bookworm", str(root), "http://m/debian"]
    assert rootfs.pack_commands(root, cache)[0] == ["tar", "--numeric-owner", "-C", str(root), "-cf", "-", "."]
    read, load = baseimage.import_commands(cache, "abc123")
    assert read == ["zstd", "-dcq", str(cache)]
    assert load[:2] == ["docker", "import"] and load[-2:] == ["-", baseimage.TAG]
    assert f"--change=LABEL {baseimage.LABEL}=abc123" in load


def test_a_cache_made_by_another_recipe_is_stale(tmp_path):
    cache = tmp_path / "base.tar.zst"
    cache.write_bytes(b"tarball")
    (tmp_path / "base.tar.zst.recipe").write_text("0123456789ab\n")
    assert not rootfs.is_cached(cache)
    (tmp_path / "base.tar.zst.recipe").write_text(rootfs.recipe() + "\n")
    assert rootfs.is_cached(cache)


def test_a_download_that_does_not_match_its_pin_is_refused(monkeypatch):
    monkeypatch.setattr(rootfs.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(b"tampered"))
    with pytest.raises(rootfs.BaseImageError, match="does not match its pinned checksum"):
        rootfs._download(rootfs.NPM)


@pytest.mark.parametrize("docker, expected", [
    ("unix:///a.sock", "unix:///a.sock"), ({"DOCKER_HOST": "unix:///b.sock"}, "unix:///b.sock")])
def test_docker_env(docker, expected):
    assert baseimage.docker_env(docker)["DOCKER_HOST"] == expected


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The CLI with no engine at DOCKER_HOST (--cache-only: the build's errors; otherwise the engine's)."""
    return subprocess.run([sys.executable, "-m", "shipshape.baseimage", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "DOCKER_HOST": NO_ENGINE, **(env or {})})


def test_cli_help_explains_cache_and_root():
    proc = cli("--help")
    assert proc.returncode == 0
    assert baseimage.CACHE_ENV in proc.stdout and "root" in proc.stdout and "--docker-host" in proc.stdout


def error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    return proc.stderr.strip().splitlines()[-1]


def test_cli_names_an_engine_that_does_not_answer_before_building_anything(tmp_path):
    proc = cli(env={baseimage.CACHE_ENV: str(tmp_path / "base.tar.zst")})
    assert error_line(proc).startswith(f"error: docker engine {NO_ENGINE}: ")
    assert list(tmp_path.iterdir()) == []


def test_cli_without_root_says_so(monkeypatch, capsys):
    monkeypatch.setenv(baseimage.CACHE_ENV, "/nonexistent/base.tar.zst")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert baseimage.main(["--cache-only"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: building the base image needs root (debootstrap does): run this as root")


@pytest.mark.skipif(os.geteuid() != 0, reason="the build checks for root first")
def test_cli_without_debootstrap_names_it(tmp_path):
    # debootstrap and chroot live in /usr/sbin; docker and zstd stay reachable
    proc = cli("--cache-only", env={baseimage.CACHE_ENV: str(tmp_path / "base.tar.zst"),
                                    "PATH": "/usr/local/bin:/usr/bin:/bin"})
    assert error_line(proc).startswith("error: not installed: debootstrap")


@pytest.mark.skipif(os.geteuid() != 0, reason="the build checks for root first")
def test_cli_when_debootstrap_fails_gives_its_last_line(tmp_path):
    fake = tmp_path / "bin" / "debootstrap"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'I: Retrieving InRelease'\n"
                    "echo 'E: Failed getting release file http://m/debian/dists/bookworm/Release'\nexit 1\n")
    fake.chmod(0o755)
    cache = tmp_path / "cache" / "base.tar.zst"
    proc = cli("--cache-only", env={baseimage.CACHE_ENV: str(cache), "PATH": f"{fake.parent}:{os.environ['PATH']}"})
    assert error_line(proc) == ("error: debootstrap exited 1: E: Failed getting release file "
                                f"http://m/debian/dists/bookworm/Release (full log: {cache}.log)")
    assert sorted(path.name for path in cache.parent.iterdir()) == ["base.tar.zst.lock", "base.tar.zst.log"]
