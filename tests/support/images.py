"""The base image and the sample apps' images, on the test engines of tests/support/dockerd.py.

A pytest plugin. Session fixtures, cheap from the second run on: the engines keep their data roots
(so every unchanged build step is a cached layer) and shipshape.baseimage caches the base image's root
filesystem (so an engine lacking the base imports it in seconds; only the very first run debootstraps,
~1.5 min, as root):

    base_image          str: shipshape.baseimage.TAG, ensured on docker_build
    base_image_on       callable(engine) -> TAG ensured on that engine, e.g. base_image_on(docker_host)
    python_app_image    SampleImage: examples/app of this checkout, built FROM the base on docker_build
    node_app_image      SampleImage: examples/node-app, likewise

    def test_x(docker_build, node_app_image):
        docker_build.cli("run", "--rm", "--network", "host", node_app_image.tag, "node", "--version")
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from shipshape import baseimage, rootfs
from tests.support.dockerd import Dockerd

REPO = Path(__file__).resolve().parents[2]
SAMPLES = {"python": REPO / "examples" / "app", "node": REPO / "examples" / "node-app"}
# The docker CLI here (28) builds with BuildKit only through the buildx plugin, which this machine does
# not have; the engine's classic builder needs no plugin, and keeps each step as an image that the
# engine's persistent data root reuses on the next run.
BUILD_ENV = {"DOCKER_BUILDKIT": "0"}


@dataclass(frozen=True)
class SampleImage:
    tag: str
    id: str
    context: Path
    build_s: float  # this session's `docker build`: the cold figure once, then cached steps only


def build_command(engine: Dockerd, context: Path, tag: str, base: str) -> list[str]:
    # --network host: the test engines have no bridge; pip and npm reach their registries as the host does.
    return ["docker", "-H", engine.host, "build", "--network", "host", "--build-arg", f"BASE={base}",
            "--tag", tag, str(context)]


def image_id(engine: Dockerd, ref: str) -> str | None:
    proc = engine.cli("image", "inspect", "--format", "{{.Id}}", ref, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def build_sample(engine: Dockerd, context: Path, tag: str, base: str) -> SampleImage:
    """`docker build` of context as tag; the image it replaces (if any) is removed, not left dangling."""
    before = image_id(engine, tag)
    started = time.monotonic()
    proc = subprocess.run(build_command(engine, context, tag, base), env={**os.environ, **BUILD_ENV},
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"docker build {context} exited {proc.returncode}:\n"
                           f"{proc.stdout[-6000:]}{proc.stderr[-3000:]}")
    image = SampleImage(tag, image_id(engine, tag), context, time.monotonic() - started)
    if before and before != image.id:
        engine.cli("image", "rm", before, check=False)  # fails harmlessly while a container uses it
    return image


def ensure_base(engine: Dockerd) -> str:
    """baseimage.TAG on engine; skips the test only when the base cannot be made on this machine at all."""
    try:
        return baseimage.ensure(engine.env)
    except baseimage.BaseImageError as error:
        buildable = shutil.which("debootstrap") is not None and os.geteuid() == 0
        if not buildable and not rootfs.is_cached(baseimage.cache_path()):
            pytest.skip(f"no cached base image, and none can be built here: {error}")
        raise


@pytest.fixture(scope="session")
def base_image(docker_build) -> str:
    """The base image's tag, on the build engine."""
    return ensure_base(docker_build)


@pytest.fixture(scope="session")
def base_image_on():
    """Factory: base_image_on(engine) ensures the base image on that engine too; returns its tag."""
    return ensure_base


@pytest.fixture(scope="session")
def python_app_image(docker_build, base_image) -> SampleImage:
    """examples/app built on the base image (docker_build)."""
    return build_sample(docker_build, SAMPLES["python"], "shipshape-test/sample-python:checkout", base_image)


@pytest.fixture(scope="session")
def node_app_image(docker_build, base_image) -> SampleImage:
    """examples/node-app built on the base image (docker_build)."""
    return build_sample(docker_build, SAMPLES["node"], "shipshape-test/sample-node:checkout", base_image)
