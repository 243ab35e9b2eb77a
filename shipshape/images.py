"""Shipping an image to the host's engine with no registry: only the layers it lacks, over the SSH connection.

    ship(runner, socket, "shipshape/app:20261121-abc", workdir)
    -> "1 of 9 layers sent, 1.2 MB (zstd) of 180 MB"

One round trip asks the host engine which images (so which layer chains) it has and whether it has
zstd; the build side packs the rest (shipshape.imagepack); the archive goes up by SFTP on the same
connection to `<name>.part`, is renamed, checked, decompressed into `docker load`, and the loaded image
id must be the local one before the image is tagged: a damaged or wrong archive fails loudly and moves
no tag. No port is opened and no registry is involved.

The whole image (`docker save | zstd`, then the same load and check) is sent instead, and the output
says why, when layers cannot be left out: the host engine keeps images in containerd (skipping is
proven on the classic store only) or answers in a way not understood, the local `docker save` wrote
an unknown format, or a layer the host had was gone by the time it loaded.
"""
from __future__ import annotations

import json
import secrets
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from shipshape.imagepack import (EXTENSION, LocalImage, Pack, SaveFormatError, chain_ids, local_image, pack,
                                 pack_whole)
from shipshape.remote import RemoteError, Runner, Script

q = shlex.quote
HOST_FORMAT = '{"id":{{json .Id}},"layers":{{json .RootFS.Layers}},"tags":{{json .RepoTags}}}'
DAMAGED, WRONG_IMAGE, LOAD_FAILED = 3, 4, 5   # load_command's exit codes


def _docker(socket: str) -> str:
    return shlex.join(["docker", "-H", f"unix://{socket}"])


@dataclass(frozen=True)
class HostImages:
    """What the host engine holds: each image's layers and tags, its store, whether zstd is there."""

    codec: str                                          # "zstd" when the host has it, else "gzip"
    store: list | None                                  # `docker info` DriverStatus; None: not understood
    images: dict[str, tuple[tuple[str, ...], tuple[str, ...]]]  # id -> (diff_ids, tags)

    @property
    def chains(self) -> set[str]:
        """Chain ids of every layer of every image (what `docker load` will not need again)."""
        return {chain for layers, _ in self.images.values() for chain in chain_ids(layers)}

    def whole_image_reason(self) -> str | None:
        """Why layers cannot be left out for this engine, or None."""
        if self.store is None:
            return "the host engine's `docker info` was not understood"
        if "io.containerd.snapshotter" in json.dumps(self.store):
            return "the host engine keeps images in containerd; layer skipping is proven on the classic store only"
        return None


def host_images_command(socket: str) -> Script:
    """One round trip: zstd on the host?, the engine's store, every image with its layers and tags."""
    d = _docker(socket)
    return Script("set -e\n"
                  "command -v zstd >/dev/null 2>&1 && echo 'codec zstd' || echo 'codec gzip'\n"
                  f"{d} info --format 'store {{{{json .DriverStatus}}}}'\n"
                  f"ids=$({d} image ls -aq --no-trunc)\n"
                  f"[ -z \"$ids\" ] || {d} image inspect --format {q(HOST_FORMAT)} $ids")


def parse_host_images(stdout: str) -> HostImages:
    codec, store, images = "gzip", None, {}
    for line in stdout.splitlines():
        if line.startswith("codec "):
            codec = line.split()[1]
        elif line.startswith("store "):
            try:
                store = json.loads(line[6:])
            except ValueError:
                store = None
        elif line.startswith("{"):
            found = json.loads(line)
            images[found["id"]] = (tuple(found["layers"] or ()), tuple(found["tags"] or ()))
    return HostImages(codec, store if isinstance(store, list) else None, images)


def tag_command(socket: str, image_id: str, tag: str) -> list[str]:
    return ["docker", "-H", f"unix://{socket}", "tag", image_id, tag]


def load_command(socket: str, remote_archive: str, image_id: str, tag: str | None, codec: str = "zstd") -> Script:
    """On the host: `<archive>.part` -> `<archive>`, integrity check, `docker load`, the loaded id must be
    `image_id`, then tag it; the archive is removed whatever happens. Exit 3: damaged in transit,
    4: another image loaded (nothing tagged), 5: docker load failed (its message above)."""
    a, part, d = q(remote_archive), q(remote_archive + ".part"), _docker(socket)
    want = f"Loaded image ID: {image_id}"
    lines = [
        "set -e",
        f"trap {q(f'rm -f {a} {part}')} EXIT",
        f"mv -f {part} {a}",
        f"{codec} -t -q {a} || {{ echo 'shipshape: the image archive arrived damaged ({codec} -t failed); "
        f"nothing loaded' >&2; exit {DAMAGED}; }}",
        f"loaded=$({codec} -dcq {a} | {d} load -q) || {{ echo 'shipshape: docker load failed; nothing tagged' >&2; "
        f"exit {LOAD_FAILED}; }}",
        f"printf '%s\\n' \"$loaded\" | grep -Fqx {q(want)} || {{ echo \"shipshape: docker load said '$loaded', "
        f"expected {image_id}; nothing tagged\" >&2; exit {WRONG_IMAGE}; }}",
    ]
    if tag:
        lines.append(shlex.join(tag_command(socket, image_id, tag)))
    lines.append(shlex.join(["echo", f"loaded {image_id[7:19]}" + (f" as {tag}" if tag else "")]))
    return Script("\n".join(lines))


def mb(n: int) -> str:
    """Bytes as people read them in a deploy log: 4.1 kB, 1.2 MB, 180 MB, 2.3 GB."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}" if n < 10 * size else f"{n / size:.0f} {unit}"
    return f"{n} B"


def summary(p: Pack, whole: str | None = None, codec_note: str = "") -> str:
    codec = p.codec + (f": {codec_note}" if codec_note else "")
    if whole:
        return f"whole image sent ({whole}): {p.layers_total} layers, {mb(p.sent_bytes)} ({codec}) of {mb(p.raw_bytes)}"
    return f"{p.layers_sent} of {p.layers_total} layers sent, {mb(p.sent_bytes)} ({codec}) of {mb(p.raw_bytes)}"


def ship(runner: Runner, socket: str, image_ref: str, workdir: Path, env: dict[str, str] | None = None,
         log: Callable[[str], None] | None = None, *, tag: str | None = None, remote_dir: str = "/tmp") -> str:
    """Put local image `image_ref` on the host engine at `socket`; return one line for the deploy output.

    `tag` (default: `image_ref` when it is a name) is set on the host only once the loaded id is
    verified. `env` overrides the local docker CLI's environment; `workdir` holds the local archive
    while it is sent, `remote_dir` the host's copy while it loads. Raises RemoteError if the host
    refuses the image."""
    log = log or (lambda line: None)
    tag = tag if tag is not None else (None if image_ref.startswith("sha256:") else image_ref)
    image = local_image(image_ref, env)
    host = parse_host_images(runner.run(host_images_command(socket)).stdout)
    if image.id in host.images:
        if tag and tag not in host.images[image.id][1]:
            runner.run(tag_command(socket, image.id, tag))
        return "already on the host"
    codec = host.codec if shutil.which("zstd") else "gzip"
    codec_note = "" if codec == "zstd" else ("no zstd on the host" if host.codec != "zstd" else "no zstd here")
    p, whole = _pack(image, host, Path(workdir) / f"image-{image.id[7:19]}.tar.{EXTENSION[codec]}", env, codec, log)
    try:
        try:
            _send(runner, socket, p, tag, remote_dir)
        except RemoteError as error:
            if not (p.layers_skipped and error.exit_code == LOAD_FAILED and "no such file" in error.stderr):
                raise
            whole = "a layer the host had was gone when it loaded"  # removed between the question and the load
            log(f"sending the whole image: {whole}")
            p = pack_whole(image, p.path, env, codec)
            _send(runner, socket, p, tag, remote_dir)
    finally:
        p.path.unlink(missing_ok=True)
    return summary(p, whole, codec_note)


def _pack(image: LocalImage, host: HostImages, out: Path, env, codec: str, log) -> tuple[Pack, str | None]:
    """The archive to send, and why it is the whole image (None: only what the host lacks)."""
    whole = host.whole_image_reason()
    if not whole:
        try:
            return pack(image, host.chains, out, env, codec), None
        except SaveFormatError as error:
            whole = f"the local docker save archive was not understood: {error}"
    log(f"sending the whole image: {whole}")
    return pack_whole(image, out, env, codec), whole


def _send(runner: Runner, socket: str, p: Pack, tag: str | None, remote_dir: str) -> None:
    remote = f"{remote_dir.rstrip('/')}/shipshape-{p.image_id[7:19]}-{secrets.token_hex(4)}{''.join(p.path.suffixes)}"
    runner.put(p.path, remote + ".part")
    runner.run(load_command(socket, remote, p.image_id, tag, p.codec))
