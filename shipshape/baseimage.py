"""shipshape's base image, made on this machine: no image registry is reachable from it.

TAG is Debian bookworm (minbase) with Python 3 (venv, pip through venv), CA certificates, Node 20 and
npm: what both sample apps need to build and to run, so their Dockerfiles stay short. Its root
filesystem is built once into a tarball (shipshape.rootfs) and cached; `ensure` `docker import`s it
into an engine that lacks it, in seconds.

    python -m shipshape.baseimage [--docker-host unix:///run/docker.sock] [--rebuild]
    ensure({"DOCKER_HOST": "unix:///run/docker.sock"})   # -> "shipshape/base:bookworm"
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Mapping

from shipshape import rootfs
from shipshape.progress import step
from shipshape.rootfs import BaseImageError

TAG = "shipshape/base:bookworm"
CACHE_ENV = "SHIPSHAPE_BASE_CACHE"
DEFAULT_CACHE = "/var/cache/shipshape/base-bookworm.tar.zst"
LABEL = "org.shipshape.base.recipe"  # which rootfs.recipe() an engine's TAG was imported from
# NODE_EXTRA_CA_CERTS: the official node binary trusts only its own CA bundle; this adds the system's
# (with the machine's local CAs), as Debian's python3 and pip already use it.
ENV = {"PATH": rootfs.PATH, "LANG": "C.UTF-8", "NODE_EXTRA_CA_CERTS": "/etc/ssl/certs/ca-certificates.crt",
       "NPM_CONFIG_UPDATE_NOTIFIER": "false", "NPM_CONFIG_FUND": "false"}

__all__ = ["TAG", "BaseImageError", "cache_path", "ensure", "ensure_cache", "main"]


def cache_path() -> Path:
    """Where the root filesystem tarball is kept: $SHIPSHAPE_BASE_CACHE, else DEFAULT_CACHE."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


def docker_env(docker: str | Mapping[str, str] | None) -> dict[str, str]:
    """The docker CLI's environment: DOCKER_HOST given as a string or in a mapping, else inherited."""
    env = dict(os.environ)
    env.update({"DOCKER_HOST": docker} if isinstance(docker, str) else (docker or {}))
    return env


def import_commands(cache: Path, recipe: str, tag: str = TAG) -> tuple[list[str], list[str]]:
    changes = [*(f"ENV {key}={value}" for key, value in ENV.items()), f"LABEL {LABEL}={recipe}",
               'CMD ["/bin/bash"]']
    return ["zstd", "-dcq", str(cache)], ["docker", "import", *(f"--change={c}" for c in changes), "-", tag]


def inspect_command(tag: str = TAG) -> list[str]:
    return ["docker", "image", "inspect", "--format", f'{{{{ index .Config.Labels "{LABEL}" }}}}', tag]


def ensure_cache(rebuild: bool = False) -> Path:
    """The root filesystem tarball, built first (as root) when missing, stale, or when `rebuild`."""
    cache = cache_path()
    if rebuild or not rootfs.is_cached(cache):
        rootfs.build(cache, force=rebuild)
    return cache


def ensure(docker: str | Mapping[str, str] | None = None, rebuild: bool = False) -> str:
    """Make sure TAG is on an engine; returns TAG.

    docker: the engine, as a DOCKER_HOST (unix:///run/docker.sock), an env mapping ({"DOCKER_HOST": ...},
    e.g. a test Dockerd's .env) or None for the environment's. Imports the cached root filesystem only
    when the engine lacks this recipe's image; builds the cache first when it is missing or stale (root).
    rebuild: run debootstrap again and re-import regardless."""
    if shutil.which("docker") is None or shutil.which("zstd") is None:
        raise BaseImageError("not installed: the docker CLI or zstd (scripts/install.sh)")
    env, recipe = docker_env(docker), rootfs.recipe()
    engine = env.get("DOCKER_HOST", "the default engine")
    found = subprocess.run(inspect_command(), env=env, capture_output=True, text=True)
    if found.returncode == 0 and found.stdout.strip() == recipe and not rebuild:
        return TAG
    if found.returncode != 0 and "no such image" not in found.stderr.lower():
        # before any minutes of debootstrap: the engine must answer to receive the image
        raise BaseImageError(f"docker engine {engine}: {(found.stderr.strip().splitlines() or ['no answer'])[-1]}")
    cache = ensure_cache(rebuild)
    with step(f"docker import {cache.name} as {TAG} into {engine}"):
        rootfs.pipe(*import_commands(cache, recipe), env=env)
    return TAG


HELP = f"""\
Build shipshape's base image ({TAG}) and import it into a Docker engine.

No image registry is reachable from these machines, so the base image is made here: debootstrap
(minbase) from the Debian mirror apt uses, apt updates + python3, python3-venv, ca-certificates, then
Node {rootfs.NODE.version} and npm {rootfs.NPM.version} from the npm registry. The root filesystem is
cached as a zstd tarball, so another engine (or the same one after a prune) imports it in seconds;
debootstrap runs again (~1.5 min) only when the cache is missing or was made by another recipe.
Building needs root; importing from the cache needs only the engine.

  cache: ${CACHE_ENV}, default {DEFAULT_CACHE}
         (+ .recipe: what made it, .log: the last build's output)
  exit:  0 and the tag on stdout; 2 and one line on stderr when it cannot be made
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shipshape.baseimage", description=HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docker-host", metavar="URL",
                        help="engine to import into, e.g. unix:///run/docker.sock (default: $DOCKER_HOST)")
    parser.add_argument("--rebuild", action="store_true",
                        help="run debootstrap again and re-import, even if cache and image are current")
    parser.add_argument("--cache-only", action="store_true",
                        help="only make sure the cached tarball is current (prints its path); no engine needed")
    args = parser.parse_args(argv)
    try:
        print(ensure_cache(args.rebuild) if args.cache_only else ensure(args.docker_host, args.rebuild))
    except BaseImageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
