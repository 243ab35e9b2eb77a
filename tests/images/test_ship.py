"""Shipping images between two real engines (build -> host), through Runner with a local connection.

Each test makes its own images (tests/images/conftest.py), so none depends on another's leftovers.
"""
from __future__ import annotations

import io
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

from shipshape import imagepack
from shipshape.imagepack import SaveFormatError, local_image, pack
from shipshape.images import host_images_command, load_command, parse_host_images, ship
from shipshape.remote import RemoteError, Runner
from tests.images.conftest import LocalConnection, path_without


@pytest.fixture
def dirs(tmp_path):
    local, remote = tmp_path / "local", tmp_path / "host"
    local.mkdir(), remote.mkdir()
    return local, remote


def do_ship(images, runner, dirs, ref, **kwargs):
    lines: list[str] = []
    text = ship(runner, images.host.socket, ref, dirs[0], images.build.env, lines.append,
                remote_dir=str(dirs[1]), **kwargs)
    assert not list(dirs[0].iterdir()) and not list(dirs[1].iterdir())  # nothing left behind on either side
    return text, lines


def host_id(images, ref):
    return images.id(images.host, ref)


def test_first_ship_sends_every_layer_and_the_host_gets_the_same_id(images, runner, dirs):
    app = images.app(images.base(), "release 1\n")
    text, lines = do_ship(images, runner, dirs, app)
    assert re.fullmatch(r"3 of 3 layers sent, [\d.]+ kB \(zstd\) of 3\d\d kB", text) and lines == []
    assert host_id(images, app) == images.id(images.build, app)
    assert runner.count == 3  # ask the host, upload, load + verify + tag


def test_second_release_sends_only_its_app_layer(images, runner, dirs):
    base = images.base()
    first, second = images.app(base, "release 1\n"), images.app(base, "release 2\n")
    do_ship(images, runner, dirs, first)
    text, _ = do_ship(images, runner, dirs, second)
    assert text.startswith("1 of 3 layers sent, ")
    sent = int(float(text.split(", ")[1].split()[0]) * 1000)  # "1.2 kB" -> bytes, roughly
    assert sent < 5_000  # the 300 kB base did not travel
    assert host_id(images, second) == images.id(images.build, second)
    assert host_id(images, first) == images.id(images.build, first)  # the previous release is untouched


def test_a_config_only_change_sends_no_layer(images, runner, dirs):
    base = images.base()
    first = images.app(base, "release 1\n")
    relabelled = images.app(base, "release 1\n", extra="LABEL shipshape.test=relabelled\n")
    do_ship(images, runner, dirs, first)
    text, _ = do_ship(images, runner, dirs, relabelled)
    assert text.startswith("0 of 3 layers sent, ")
    assert host_id(images, relabelled) == images.id(images.build, relabelled)


def test_an_image_already_on_the_host_sends_nothing(images, runner, dirs):
    app = images.app(images.base(), "release 1\n")
    do_ship(images, runner, dirs, app)
    before = runner.count
    assert do_ship(images, runner, dirs, app) == ("already on the host", [])
    assert runner.count == before + 1  # only the question
    images.host.cli("tag", app, app + "-other")
    images.host.cli("rmi", app)  # the image stays (its other tag), this tag goes
    assert do_ship(images, runner, dirs, app)[0] == "already on the host"
    assert host_id(images, app) == images.id(images.build, app)  # tagged again, nothing sent
    images.host.cli("rmi", app + "-other")


def test_the_same_layer_on_another_parent_is_sent(images, runner, dirs):
    """The engine looks layers up by chain: an equal diff_id above another base is not present."""
    one, two = images.app(images.base(), "same app\n"), images.app(images.base(), "same app\n")
    do_ship(images, runner, dirs, one)
    assert local_image(one, images.build.env).diff_ids[1:] == local_image(two, images.build.env).diff_ids[1:]
    text, _ = do_ship(images, runner, dirs, two)
    assert text.startswith("3 of 3 layers sent, ")
    assert host_id(images, two) == images.id(images.build, two)


# ---------------------------------------------------------------- what must fail, and move no tag


@pytest.fixture
def released(images, runner, dirs):
    """A host serving release 1 under `live` (the tag a deploy would move), release 2 built locally."""
    base = images.base()
    first, second = images.app(base, "release 1\n"), images.app(base, "release 2\n")
    live = images.tag_name("live")
    do_ship(images, runner, dirs, first, tag=live)
    first_id = images.id(images.build, first)
    assert host_id(images, live) == first_id
    return first_id, local_image(second, images.build.env), live


def load_archive(images, runner, dirs, archive: Path, image_id: str, tag: str):
    remote = str(dirs[1] / "upload.tar.zst")
    runner.put(archive, remote + ".part")
    with pytest.raises(RemoteError) as error:
        runner.run(load_command(images.host.socket, remote, image_id, tag))
    assert not list(dirs[1].iterdir())  # the archive is removed on failure too
    return error.value


def present(images) -> set[str]:
    return parse_host_images(Runner(LocalConnection()).run(host_images_command(images.host.socket)).stdout).chains


def test_an_archive_damaged_in_transit_is_refused(images, runner, dirs, released):
    first_id, second, live = released
    p = pack(second, present(images), dirs[0] / "x.tar.zst", images.build.env)
    data = bytearray(p.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.path.write_bytes(bytes(data))
    error = load_archive(images, runner, dirs, p.path, second.id, live)
    assert error.exit_code == 3 and "the image archive arrived damaged" in str(error)
    assert host_id(images, live) == first_id and host_id(images, second.id) is None


def test_a_layer_whose_content_is_not_its_diff_id_is_refused(images, runner, dirs, released):
    first_id, second, live = released
    raw = dirs[0] / "raw.tar"
    images.build.cli("save", "-o", str(raw), second.id)
    forged = dirs[0] / "forged.tar"
    with tarfile.open(raw) as source, tarfile.open(forged, "w") as out:
        top = imagepack.read_manifest(source, second)[-1]
        for member in source:
            if member.name == top:
                evil = io.BytesIO()
                with tarfile.open(fileobj=evil, mode="w") as layer:
                    info = tarfile.TarInfo("app.txt")
                    info.size = 5
                    layer.addfile(info, io.BytesIO(b"evil\n"))
                member.size = len(evil.getvalue())
                out.addfile(member, io.BytesIO(evil.getvalue()))
            else:
                out.addfile(member, source.extractfile(member) if member.isfile() else None)
    subprocess.run(["zstd", "-q", "--rm", str(forged)], check=True)
    error = load_archive(images, runner, dirs, dirs[0] / "forged.tar.zst", second.id, live)
    assert error.exit_code == 5 and "invalid diffID for layer 2" in error.stderr
    assert host_id(images, live) == first_id and host_id(images, second.id) is None


def test_a_left_out_layer_the_host_lacks_fails_the_load(images, runner, dirs, released):
    """Leaving a layer out is safe only because the engine refuses when it really needs the file."""
    first_id, second, live = released
    p = pack(second, set(second.chains), dirs[0] / "x.tar.zst", images.build.env)  # pretend all are there
    assert p.layers_sent == 0
    error = load_archive(images, runner, dirs, p.path, second.id, live)
    assert error.exit_code == 5 and "layer.tar: no such file or directory" in error.stderr
    assert host_id(images, live) == first_id and host_id(images, second.id) is None


def test_another_image_than_the_one_expected_is_not_tagged(images, runner, dirs, released):
    first_id, second, live = released
    other = images.app(images.base(), "someone else's\n")
    p = pack(local_image(other, images.build.env), set(), dirs[0] / "x.tar.zst", images.build.env)
    error = load_archive(images, runner, dirs, p.path, second.id, live)
    assert error.exit_code == 4 and f"expected {second.id}; nothing tagged" in str(error)
    assert host_id(images, live) == first_id and host_id(images, second.id) is None

# ---------------------------------------------------------------- fallbacks


def test_a_host_without_zstd_gets_gzip(images, dirs, tmp_path):
    base = images.base()
    first, second = images.app(base, "release 1\n"), images.app(base, "release 2\n")
    runner = Runner(LocalConnection(env={"PATH": path_without(tmp_path, "zstd")}))
    do_ship(images, runner, dirs, first)
    text, _ = do_ship(images, runner, dirs, second)
    assert text.startswith("1 of 3 layers sent, ") and "(gzip: no zstd on the host) of " in text
    assert host_id(images, second) == images.id(images.build, second)


class ProbeRewriting(LocalConnection):
    """A host whose answer to the image question is edited, or that changes right after answering."""

    def __init__(self, edit=lambda out: out, after=lambda: None):
        super().__init__()
        self.edit, self.after = edit, after

    def run(self, text, **kwargs):
        result = super().run(text, **kwargs)
        if "image ls -aq" in text:
            result.stdout = self.edit(result.stdout)
            self.after()
        return result


def test_a_containerd_store_host_gets_the_whole_image(images, dirs):
    base = images.base()
    first, second = images.app(base, "release 1\n"), images.app(base, "release 2\n")
    do_ship(images, Runner(LocalConnection()), dirs, first)
    containerd = ProbeRewriting(edit=lambda out: "\n".join(
        'store [["driver-type","io.containerd.snapshotter.v1"]]' if line.startswith("store ") else line
        for line in out.splitlines()))
    text, lines = do_ship(images, Runner(containerd), dirs, second)
    reason = "the host engine keeps images in containerd; layer skipping is proven on the classic store only"
    assert text.startswith(f"whole image sent ({reason}): 3 layers, ") and lines == [f"sending the whole image: {reason}"]
    assert host_id(images, second) == images.id(images.build, second)


def test_a_layer_gone_by_load_time_resends_the_whole_image(images, dirs):
    base = images.base()
    first, second = images.app(base, "release 1\n"), images.app(base, "release 2\n")
    do_ship(images, Runner(LocalConnection()), dirs, first)
    pruning = ProbeRewriting(after=lambda: images.host.cli("rmi", first))  # its layers go with it
    text, lines = do_ship(images, Runner(pruning), dirs, second)
    assert text.startswith("whole image sent (a layer the host had was gone when it loaded): 3 layers, ")
    assert lines == ["sending the whole image: a layer the host had was gone when it loaded"]
    assert host_id(images, second) == images.id(images.build, second)


def test_an_unknown_save_format_sends_the_whole_image(images, runner, dirs, monkeypatch):
    base = images.base()
    first, second = images.app(base, "release 1\n"), images.app(base, "release 2\n")
    do_ship(images, runner, dirs, first)

    def unknown(tar, image):
        raise SaveFormatError("manifest.json not understood (test)")
    monkeypatch.setattr(imagepack, "read_manifest", unknown)
    text, lines = do_ship(images, runner, dirs, second)
    assert text.startswith("whole image sent (the local docker save archive was not understood: manifest.json not "
                           "understood (test)): 3 layers, ")
    assert host_id(images, second) == images.id(images.build, second)
