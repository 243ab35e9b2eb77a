"""Pure tests: image shipping's commands as exact text, the host's answer parsed, chain ids, summaries."""
from __future__ import annotations

import pytest

from shipshape.imagepack import Pack, chain_ids, inspect_command, layers_to_omit, save_command
from shipshape.images import (HostImages, host_images_command, load_command, mb, parse_host_images, summary,
                              tag_command)

ID = "sha256:" + "ab" * 32
# Three diff_ids of a real image and the chain ids dockerd 20.10 stored for them (image/overlay2/layerdb).
DIFFS = ("sha256:148e0183dabcee3e4343c0a9d55302bb6912ec6878771b09e84d43efef6abf03",
         "sha256:b1ac336daf374fc8cd0d04ce14e0283432c224f9161483fbd7a7b45b9566e385",
         "sha256:5d1db5c2c3b97af3abb2d6238588478d168051ff0d554391720d32ef0dec5c91")
CHAINS = ("sha256:148e0183dabcee3e4343c0a9d55302bb6912ec6878771b09e84d43efef6abf03",
          "sha256:89d1b96cf4c34f0093299f3a9f8fb295d2ea14dc8bbfc1f598ba55d968805ed4",
          "sha256:3e6704e9233ce2d4bd7233efdc44c2b39d116c927f10ad2d7f53258ec1193b61")


def test_chain_ids_are_the_engines():
    assert chain_ids(DIFFS) == CHAINS
    assert chain_ids(()) == ()


def test_same_layer_on_another_parent_is_another_chain():
    assert chain_ids(("sha256:" + "1" * 64, DIFFS[1]))[1] != CHAINS[1]


def test_host_images_command():
    assert host_images_command("/run/docker.sock").text == (
        "set -e\n"
        "command -v zstd >/dev/null 2>&1 && echo 'codec zstd' || echo 'codec gzip'\n"
        "docker -H unix:///run/docker.sock info --format 'store {{json .DriverStatus}}'\n"
        "ids=$(docker -H unix:///run/docker.sock image ls -aq --no-trunc)\n"
        "[ -z \"$ids\" ] || docker -H unix:///run/docker.sock image inspect --format "
        "'{\"id\":{{json .Id}},\"layers\":{{json .RootFS.Layers}},\"tags\":{{json .RepoTags}}}' $ids")


CLASSIC = 'store [["Backing Filesystem","extfs"],["Supports d_type","true"],["Native Overlay Diff","true"]]'
IMAGE = '{"id":"%s","layers":["%s","%s"],"tags":["shipshape/app:r1"]}' % (ID, DIFFS[0], DIFFS[1])
UNTAGGED = '{"id":"sha256:%s","layers":null,"tags":null}' % ("cd" * 32)


@pytest.mark.parametrize("stdout, codec, reason, images", [
    (f"codec zstd\n{CLASSIC}\n{IMAGE}\n", "zstd", None, {ID: (DIFFS[:2], ("shipshape/app:r1",))}),
    (f"codec gzip\n{CLASSIC}\n{UNTAGGED}\n", "gzip", None, {"sha256:" + "cd" * 32: ((), ())}),
    (f"codec zstd\n{CLASSIC}\n", "zstd", None, {}),  # an engine with no images
    ('codec zstd\nstore [["driver-type","io.containerd.snapshotter.v1"]]\n', "zstd",
     "the host engine keeps images in containerd; layer skipping is proven on the classic store only", {}),
    ("codec zstd\nstore <no value>\n", "zstd", "the host engine's `docker info` was not understood", {}),
    ("codec zstd\n", "zstd", "the host engine's `docker info` was not understood", {}),
])
def test_parse_host_images(stdout, codec, reason, images):
    host = parse_host_images(stdout)
    assert (host.codec, host.whole_image_reason(), host.images) == (codec, reason, images)


def test_host_chains_cover_every_prefix_of_every_image():
    host = HostImages("zstd", [], {ID: (DIFFS[:2], ()), "sha256:x": (DIFFS[2:], ())})
    assert host.chains == {CHAINS[0], CHAINS[1], DIFFS[2]}  # DIFFS[2] alone is a base layer, not CHAINS[2]


@pytest.mark.parametrize("paths, present, omitted", [
    (["a/layer.tar", "b/layer.tar", "c/layer.tar"], set(), set()),
    (["a/layer.tar", "b/layer.tar", "c/layer.tar"], set(CHAINS[:2]), {"a/layer.tar", "b/layer.tar"}),
    (["a/layer.tar", "b/layer.tar", "c/layer.tar"], set(CHAINS), {"a/layer.tar", "b/layer.tar", "c/layer.tar"}),
    # a layer above a missing one is missing too, whatever its diff_id (chains are what the engine looks up)
    (["a/layer.tar", "b/layer.tar", "c/layer.tar"], {CHAINS[0], CHAINS[2]}, {"a/layer.tar", "c/layer.tar"}),
    # one file shared by a present and a missing layer (OCI-style blobs/sha256/<digest>) is kept
    (["blobs/x", "blobs/y", "blobs/x"], set(CHAINS[:2]), {"blobs/y"}),
])
def test_layers_to_omit(paths, present, omitted):
    assert layers_to_omit(paths, CHAINS, present) == omitted


def test_load_command():
    assert load_command("/run/docker.sock", "/tmp/shipshape-ab.tar.zst", ID, "shipshape/app:r2").text == (
        "set -e\n"
        "trap 'rm -f /tmp/shipshape-ab.tar.zst /tmp/shipshape-ab.tar.zst.part' EXIT\n"
        "mv -f /tmp/shipshape-ab.tar.zst.part /tmp/shipshape-ab.tar.zst\n"
        "zstd -t -q /tmp/shipshape-ab.tar.zst || { echo 'shipshape: the image archive arrived damaged "
        "(zstd -t failed); nothing loaded' >&2; exit 3; }\n"
        "loaded=$(zstd -dcq /tmp/shipshape-ab.tar.zst | docker -H unix:///run/docker.sock load -q) || "
        "{ echo 'shipshape: docker load failed; nothing tagged' >&2; exit 5; }\n"
        f"printf '%s\\n' \"$loaded\" | grep -Fqx 'Loaded image ID: {ID}' || "
        f"{{ echo \"shipshape: docker load said '$loaded', expected {ID}; nothing tagged\" >&2; exit 4; }}\n"
        f"docker -H unix:///run/docker.sock tag {ID} shipshape/app:r2\n"
        "echo 'loaded abababababab as shipshape/app:r2'")


def test_load_command_gzip_untagged_and_quoted():
    text = load_command("/run/d.sock", "/srv/a b/x.tar.gz", ID, None, "gzip").text
    assert "mv -f '/srv/a b/x.tar.gz.part' '/srv/a b/x.tar.gz'\n" in text
    assert "gzip -t -q '/srv/a b/x.tar.gz' ||" in text and "loaded=$(gzip -dcq '/srv/a b/x.tar.gz' |" in text
    assert " tag " not in text and text.endswith("echo 'loaded abababababab'")


@pytest.mark.parametrize("command, argv", [
    (tag_command("/run/d.sock", ID, "shipshape/app:r2"), ["docker", "-H", "unix:///run/d.sock", "tag", ID,
                                                          "shipshape/app:r2"]),
    (inspect_command("shipshape/app:r2"), ["docker", "image", "inspect", "--format",
                                           '{"id":{{json .Id}},"layers":{{json .RootFS.Layers}}}', "shipshape/app:r2"]),
    (save_command(ID, "/w/x.save.tar"), ["docker", "save", "-o", "/w/x.save.tar", ID]),
])
def test_local_and_tag_commands(command, argv):
    assert command == argv


@pytest.mark.parametrize("n, text", [(0, "0 B"), (999, "999 B"), (4_100, "4.1 kB"), (1_234_567, "1.2 MB"),
                                     (180_400_000, "180 MB"), (2_300_000_000, "2.3 GB")])
def test_mb(n, text):
    assert mb(n) == text


@pytest.mark.parametrize("pack, whole, note, text", [
    (Pack(ID, None, "zstd", 180_000_000, 1_200_000, 3, 9), None, "", "3 of 9 layers sent, 1.2 MB (zstd) of 180 MB"),
    (Pack(ID, None, "gzip", 180_000_000, 1_500_000, 1, 9), None, "no zstd on the host",
     "1 of 9 layers sent, 1.5 MB (gzip: no zstd on the host) of 180 MB"),
    (Pack(ID, None, "zstd", 180_000_000, 61_000_000, 9, 9), "a layer the host had was gone when it loaded", "",
     "whole image sent (a layer the host had was gone when it loaded): 9 layers, 61 MB (zstd) of 180 MB"),
])
def test_summary(pack, whole, note, text):
    assert summary(pack, whole, note) == text
