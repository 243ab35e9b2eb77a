"""The base image (shipshape.baseimage): what it holds, that it stays small, that engines share its layer."""
from __future__ import annotations

import json

import pytest

from shipshape import baseimage, rootfs
from tests.docker.conftest import UID

# What both sample apps need to build and run, checked as a non-root user with a read-only root.
HOLDS = [
    (["python3", "--version"], "Python 3.11."),
    (["sh", "-c", "python3 -m venv /tmp/venv && /tmp/venv/bin/pip --version"], "pip "),
    (["node", "--version"], f"v{rootfs.NODE.version}"),
    (["npm", "--version"], rootfs.NPM.version),
    (["sh", "-c", "test -s /etc/ssl/certs/ca-certificates.crt && echo certificates"], "certificates"),
    (["node", "-e", "console.log(process.env.NODE_EXTRA_CA_CERTS)"], "/etc/ssl/certs/ca-certificates.crt"),
]
# Left out to keep it small: docs but copyright files, man pages, apt's package lists.
LEFT_OUT = ("{ find /usr/share/doc -type f ! -name copyright; find /var/lib/apt/lists -mindepth 1; "
            "ls -d /usr/share/man; } 2>/dev/null; true")


def run(engine, *command: str) -> str:
    return engine.cli("run", "--rm", "--network", "host", "--user", f"{UID}:{UID}", "--read-only",
                      "--tmpfs", "/tmp:exec", baseimage.TAG, *command).stdout


@pytest.mark.parametrize("command, expected", HOLDS, ids=[" ".join(c)[:40] for c, _ in HOLDS])
def test_base_image_holds(docker_build, base_image, command, expected):
    assert run(docker_build, *command).startswith(expected)


def test_base_image_has_no_docs_or_package_lists(docker_build, base_image):
    assert run(docker_build, "sh", "-c", LEFT_OUT).split() == []


def test_base_image_is_labelled_with_its_recipe(docker_build, base_image):
    labels = json.loads(docker_build.cli("image", "inspect", "--format", "{{json .Config.Labels}}",
                                         base_image).stdout)
    assert labels == {baseimage.LABEL: rootfs.recipe()}


def test_ensure_on_an_engine_that_has_it_does_nothing(docker_build, base_image):
    identity = ("image", "inspect", "--format", "{{.Id}} {{.Created}}", base_image)
    before, cached = docker_build.cli(*identity).stdout, baseimage.cache_path().stat().st_mtime_ns
    assert baseimage.ensure(docker_build.env) == base_image
    # No import (a new import gets a new creation time, hence a new id) and no rebuild of the cache.
    assert docker_build.cli(*identity).stdout == before
    assert baseimage.cache_path().stat().st_mtime_ns == cached


def test_both_engines_hold_the_same_base_layer(docker_build, docker_host, base_image, base_image_on):
    """Imported from one cached tarball, the layer is the same on every engine: shipping skips it."""
    base_image_on(docker_host)
    layers = [json.loads(engine.cli("image", "inspect", "--format", "{{json .RootFS.Layers}}",
                                    base_image).stdout) for engine in (docker_build, docker_host)]
    assert layers[0] == layers[1] and len(layers[0]) == 1
