"""The sample apps' images (examples/app, examples/node-app) on the base image, run as the deploy runs them."""
from __future__ import annotations

import json
import subprocess

import httpx

from tests.support.images import build_sample


def inspect(engine, ref: str, template: str):
    return json.loads(engine.cli("inspect", "--format", "{{json " + template + "}}", ref).stdout)


def test_sample_image_is_built_on_the_base_image(docker_build, base_image, sample):
    base_layers = inspect(docker_build, base_image, ".RootFS.Layers")
    assert inspect(docker_build, sample.image.id, ".RootFS.Layers")[:len(base_layers)] == base_layers


def test_sample_image_defaults(docker_build, sample):
    config = inspect(docker_build, sample.image.id, ".Config")
    assert config["WorkingDir"] == "/app" and "PORT=8080" in config["Env"]
    assert config["User"] == "10001"  # not root, even when the runtime passes no --user


def test_sample_migrates_and_serves_as_any_user_on_a_read_only_root(containers, sample):
    migrated = containers.once(sample, *sample.migrate)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    app = containers.start(sample)
    assert httpx.get(app.url + "/readyz", timeout=5).json() == {"status": "ready"}
    version = httpx.get(app.url + "/version", timeout=5).json()
    assert version["release"] == f"r-docker-{sample.name}", version


def test_sample_listens_on_loopback_only(containers, sample):
    app = containers.start(sample)
    listening = subprocess.run(["ss", "-Hltn", f"sport = :{app.port}"], capture_output=True, text=True,
                               check=True).stdout.split()
    assert f"127.0.0.1:{app.port}" in listening, listening


def test_sample_writes_only_its_shared_dirs(containers, sample):
    """The root filesystem is read-only (see conftest), and what the app writes lands in the mounts."""
    app = containers.start(sample)
    httpx.get(app.url + "/healthz", timeout=5)
    for path in app.shared.values():
        assert [entry.name for entry in path.iterdir()] == ["app.log"], path
    changed = {line.split()[-1] for line in app.engine.cli("diff", app.name).stdout.splitlines()}
    assert changed <= {"/app", "/tmp", *(f"/app/{dir_}" for dir_ in sample.shared_dirs)}, changed


def test_sample_drains_and_exits_on_sigterm(containers, sample):
    app = containers.start(sample)
    app.engine.cli("stop", "--time", "25", app.name)
    assert app.state()["ExitCode"] == 0  # SIGTERM reached the app and it drained: a SIGKILL gives 137
    assert sample.stopped in app.logs()


def test_secrets_reach_the_container_but_no_image_layer(docker_build, containers, sample):
    app = containers.start(sample)
    running_env = "\n".join(inspect(docker_build, app.name, ".Config.Env"))
    history = docker_build.cli("history", "--no-trunc", sample.image.id).stdout
    image_config = json.dumps(inspect(docker_build, sample.image.id, ".Config"))
    for secret in sample.secrets:
        assert secret in running_env
        assert secret not in history and secret not in image_config


def test_sample_image_rebuild_reuses_every_layer(docker_build, base_image, sample):
    """What makes a warm run fast: an unchanged checkout builds to the very same image."""
    again = build_sample(docker_build, sample.image.context, sample.image.tag, base_image)
    assert again.id == sample.image.id
