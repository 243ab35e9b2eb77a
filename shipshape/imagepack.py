"""The build side of image shipping: an archive of one local image holding only what the host lacks.

`docker save` of the image (by id, so the archive carries no tag and `docker load` tags nothing), then
the same tar minus the layer files of layers the host engine already has, compressed. The classic
image store's `docker load` (moby image/tarexport/load.go) looks each layer up by its chain id and
opens the layer file only when that chain is missing, so an absent file for a present layer is never
read; a missing file for a missing layer fails the load, and a layer whose content does not hash to
the config's diff_id fails it too ("invalid diffID"). Presence is decided per chain id, not per diff_id:
the same layer on another parent is another layer to the engine.

The local docker CLI uses the ambient environment (DOCKER_HOST ...), overridden by `env`.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

# How each codec compresses here; the host decompresses with `<codec> -dc` (see shipshape.images).
COMPRESS = {"zstd": ["zstd", "-q", "-T0", "-c"], "gzip": ["gzip", "-c"]}
EXTENSION = {"zstd": "zst", "gzip": "gz"}
INSPECT_FORMAT = '{"id":{{json .Id}},"layers":{{json .RootFS.Layers}}}'


class ImageError(Exception):
    """The local engine could not give the image as asked."""


class SaveFormatError(ImageError):
    """`docker save` wrote an archive this module does not read (layer skipping is then off)."""


def chain_ids(diff_ids: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The engine's chain id of each layer: the first diff_id, then sha256("<parent chain> <diff_id>")."""
    chains: list[str] = []
    for diff_id in diff_ids:
        chains.append(diff_id if not chains else
                      "sha256:" + hashlib.sha256(f"{chains[-1]} {diff_id}".encode()).hexdigest())
    return tuple(chains)


@dataclass(frozen=True)
class LocalImage:
    id: str
    diff_ids: tuple[str, ...]

    @property
    def chains(self) -> tuple[str, ...]:
        return chain_ids(self.diff_ids)


@dataclass(frozen=True)
class Pack:
    """One compressed archive ready to send, and what went into it."""

    image_id: str
    path: Path
    codec: str
    raw_bytes: int          # the whole image as `docker save` writes it
    sent_bytes: int         # the compressed archive
    layers_sent: int
    layers_total: int

    @property
    def layers_skipped(self) -> int:
        return self.layers_total - self.layers_sent


def inspect_command(image_ref: str) -> list[str]:
    return ["docker", "image", "inspect", "--format", INSPECT_FORMAT, image_ref]


def save_command(image_id: str, path: Path | str) -> list[str]:
    return ["docker", "save", "-o", str(path), image_id]


def docker(argv: list[str], env: dict[str, str] | None) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise ImageError(f"{' '.join(argv[:3])} ... exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    return proc.stdout


def local_image(image_ref: str, env: dict[str, str] | None = None) -> LocalImage:
    """The local image's id and layer diff_ids."""
    found = json.loads(docker(inspect_command(image_ref), env))
    return LocalImage(found["id"], tuple(found["layers"] or ()))


def layers_to_omit(paths: list[str], chains: tuple[str, ...], present: set[str]) -> set[str]:
    """Layer files the archive can leave out: every layer stored in that file is present on the host."""
    needed = {path for path, chain in zip(paths, chains) if chain not in present}
    return {path for path, chain in zip(paths, chains) if chain in present} - needed


def read_manifest(tar: tarfile.TarFile, image: LocalImage) -> list[str]:
    """The layer file of each layer, after checking the archive holds exactly this image."""
    names = set(tar.getnames())
    try:
        [entry] = json.load(tar.extractfile("manifest.json"))
        paths, config = list(entry["Layers"]), tar.extractfile(entry["Config"]).read()
    except (KeyError, ValueError, TypeError, AttributeError) as error:
        raise SaveFormatError(f"manifest.json not understood ({error!r})") from None
    if "sha256:" + hashlib.sha256(config).hexdigest() != image.id:
        raise SaveFormatError("its config does not hash to the image id")
    if len(paths) != len(image.diff_ids) or not names.issuperset(paths):
        raise SaveFormatError("its manifest does not list one layer file per layer")
    return paths


def pack(image: LocalImage, present: set[str], out: Path, env: dict[str, str] | None = None,
         codec: str = "zstd") -> Pack:
    """Save `image` and write to `out` a `codec`-compressed archive without the layers in `present`.

    `present`: chain ids the host engine has (empty: the whole image). Raises SaveFormatError, with
    nothing written, when the saved archive is not in a format whose layers can be left out.
    """
    if not present:
        return pack_whole(image, out, env, codec)
    raw = out.with_name(out.name + ".save.tar")
    try:
        docker(save_command(image.id, raw), env)
        with tarfile.open(raw) as tar:
            _write(tar, layers_to_omit(read_manifest(tar, image), image.chains, present), out, codec)
        sent = sum(1 for chain in image.chains if chain not in present)
        return Pack(image.id, out, codec, raw.stat().st_size, out.stat().st_size, sent, len(image.diff_ids))
    finally:
        raw.unlink(missing_ok=True)


def pack_whole(image: LocalImage, out: Path, env: dict[str, str] | None = None, codec: str = "zstd") -> Pack:
    """`docker save | <codec>` of the whole image, byte for byte (no format assumed)."""
    raw = out.with_name(out.name + ".save.tar")
    try:
        docker(save_command(image.id, raw), env)
        with open(raw, "rb") as source, open(out, "wb") as sink:
            subprocess.run(COMPRESS[codec], stdin=source, stdout=sink, check=True)
        n = len(image.diff_ids)
        return Pack(image.id, out, codec, raw.stat().st_size, out.stat().st_size, n, n)
    finally:
        raw.unlink(missing_ok=True)


def _write(tar: tarfile.TarFile, omit: set[str], out: Path, codec: str) -> None:
    """Copy the saved archive's entries, minus `omit`, through the compressor into `out`."""
    with open(out, "wb") as sink:
        proc = subprocess.Popen(COMPRESS[codec], stdin=subprocess.PIPE, stdout=sink)
        try:
            with tarfile.open(fileobj=proc.stdin, mode="w|", format=tarfile.PAX_FORMAT) as copy:
                for member in tar:
                    if member.name not in omit:
                        copy.addfile(member, tar.extractfile(member) if member.isfile() else None)
        finally:
            proc.stdin.close()
            code = proc.wait()
    if code != 0:
        raise ImageError(f"{COMPRESS[codec][0]} exited {code} while writing {out}")
