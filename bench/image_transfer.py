"""Benchmark: shipping a second release that changes only application code, layer-aware vs whole image.

    .venv/bin/python bench/image_transfer.py [--rounds 3] [--app python|node] [--base IMAGE]
                                             [--build-host URL --target-host URL] [--no-ssh]

Both ways are measured in the same run, on the same two engines and the same SSH connection setup:

  layer-aware   shipshape.images.ship: ask the host which layer chains it has, `docker save`, keep only
                the missing layers, zstd, SFTP upload, zstd -d | docker load, verify the id
  whole image   docker save IMAGE | zstd -T0 | ssh HOST 'zstd -d | docker load' (streamed end to end)

The image is realistic: a sample app of this repository built by its own Dockerfile (examples/app, or
examples/node-app with --app node) on shipshape's Debian base image (shipshape.baseimage,
`shipshape/base:bookworm`): dependencies in their own layer, then the code. Release 2 is release 1 with
one line of application code changed. By default the bench starts two dockerds of its own (a "build"
and a "host" engine, private data roots, stopped and deleted at the end) and goes over the local sshd
of scripts/local-host.sh (127.0.0.1:2222); `--build-host` and `--target-host` use given engines
instead (the target's socket must be reachable by the SSH user).
Prints a table and how each figure was measured; writes bench/results/image-transfer-<app>-<date>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from shipshape import baseimage, images  # noqa: E402
from shipshape.imagepack import COMPRESS  # noqa: E402
from shipshape.remote import Runner  # noqa: E402

TARGET = 10  # the target: at least 10x fewer bytes
SSH_CONFIG = REPO / ".local" / "ssh" / "config"
SSH = ["ssh", "-F", str(SSH_CONFIG), "-o", "BatchMode=yes", "shipshape-local"]
# app -> (directory, the file release 2 changes, the line it appends)
SAMPLES = {
    "python": ("examples/app", "app/main.py", "\nBENCH_RELEASE = 2  # bench/image_transfer.py: a code-only change\n"),
    "node": ("examples/node-app", "src/server.ts", "\n// bench/image_transfer.py: release 2, a code-only change\n"),
}

# ---------------------------------------------------------------- pure: figures


@dataclass(frozen=True)
class Transfer:
    """One shipping of release 2: payload bytes that went to the host, and wall time."""

    method: str
    bytes_sent: int
    wall_s: float
    detail: str = ""


def median(runs: list[Transfer]) -> Transfer:
    return Transfer(runs[0].method, int(statistics.median(r.bytes_sent for r in runs)),
                    round(statistics.median(r.wall_s for r in runs), 3), runs[-1].detail)


def table(layered: Transfer, whole: Transfer, raw_bytes: int) -> str:
    rows = [f"{'release 2 (app code only)':<44} {'bytes sent':>12} {'MB':>8} {'wall s':>7}"]
    for t in (layered, whole):
        rows.append(f"{t.method:<44} {t.bytes_sent:>12} {t.bytes_sent / 1e6:>8.2f} {t.wall_s:>7.2f}")
    rows.append(f"{'(image as docker save writes it)':<44} {raw_bytes:>12} {raw_bytes / 1e6:>8.2f}")
    return "\n".join(rows)


def verdict(layered: Transfer, whole: Transfer) -> str:
    ratio = whole.bytes_sent / max(layered.bytes_sent, 1)
    speed = whole.wall_s / layered.wall_s if layered.wall_s else float("inf")
    met = "met" if ratio >= TARGET else "NOT met"
    return (f"bytes: {ratio:.0f}x fewer with the layer-aware transfer (target >= {TARGET}x: {met}); "
            f"wall time: {speed:.1f}x {'faster' if speed >= 1 else 'slower'}")

# ---------------------------------------------------------------- engines


class Engine:
    """A dockerd of the bench's own (private data root, no bridge), or one given by URL."""

    def __init__(self, name: str, url: str | None, scratch: Path):
        self.name, self.proc = name, None
        self.url = url or f"unix:///run/shipshape-bench/{name}.sock"
        self.data = scratch / name
        if url is None:
            Path("/run/shipshape-bench").mkdir(parents=True, exist_ok=True)
            self.proc = subprocess.Popen(
                ["dockerd", "--host", self.url, "--data-root", str(self.data),
                 "--exec-root", f"/run/shipshape-bench/{name}-exec", "--pidfile", f"/run/shipshape-bench/{name}.pid",
                 "--bridge", "none", "--iptables=false", "--ip-masq=false"],
                stdout=open(scratch / f"{name}.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True)
            deadline = time.monotonic() + 30
            while self.cli("version", check=False).returncode != 0:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"dockerd {name} did not start: see {scratch / f'{name}.log'}")
                time.sleep(0.2)

    @property
    def env(self) -> dict[str, str]:
        return {"DOCKER_HOST": self.url}

    @property
    def socket(self) -> str:
        return self.url.removeprefix("unix://")

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(["docker", "-H", self.url, *args], capture_output=True, text=True)
        if check and proc.returncode:
            raise RuntimeError(f"docker {' '.join(args[:2])} on {self.name}: {proc.stderr.strip()[-800:]}")
        return proc

    def image_id(self, ref: str) -> str | None:
        proc = self.cli("image", "inspect", "--format", "{{.Id}}", ref, check=False)
        return proc.stdout.strip() if proc.returncode == 0 else None

    def stop(self) -> None:
        """Stop the engine the bench started; unmount what it leaves (its default netns) and remove it."""
        if not self.proc:
            return
        self.proc.terminate()
        self.proc.wait(timeout=60)
        exec_root = f"/run/shipshape-bench/{self.name}-exec"
        with open("/proc/mounts") as mounts:
            points = [line.split()[1] for line in mounts if line.split()[1].startswith(exec_root + "/")]
        for point in reversed(points):
            subprocess.run(["umount", point], check=False)
        shutil.rmtree(exec_root, ignore_errors=True)

# ---------------------------------------------------------------- the two releases


def build_release(build: Engine, base: str, app: str, scratch: Path, n: int) -> str:
    """The sample's own Dockerfile FROM `base`; release 2 differs from release 1 by one line of app code."""
    directory, changed, line = SAMPLES[app]
    context = scratch / f"release{n}"
    shutil.copytree(REPO / directory, context, ignore=shutil.ignore_patterns(
        "__pycache__", "*.pyc", ".venv", "node_modules", "dist", "logs"))
    if n > 1:
        with open(context / changed, "a") as code:
            code.write(line)
    tag = f"shipshape-bench/app:r{n}"
    proc = subprocess.run(["docker", "build", "-q", "--network", "host", "--build-arg", f"BASE={base}", "-t", tag,
                           str(context)],
                          capture_output=True, text=True, env={**os.environ, **build.env, "DOCKER_BUILDKIT": "0"})
    if proc.returncode:
        raise RuntimeError(f"docker build of release {n}: {proc.stderr.strip()[-1500:]}")
    return build.image_id(tag)

# ---------------------------------------------------------------- the two ways of shipping


class Counting:
    """A connection that counts what goes to the host: command text, stdin, uploaded files."""

    def __init__(self, connection):
        self.connection, self.sent = connection, 0

    def run(self, text, **kwargs):
        self.sent += len(text.encode())
        return self.connection.run(text, **kwargs)

    def put(self, local, remote):
        self.sent += Path(local).stat().st_size
        return self.connection.put(local, remote)


class LocalShell:
    """--no-ssh: the "host" is this machine's sh (as tests/images/conftest.py's LocalConnection)."""

    def run(self, text, hide=True, warn=True, in_stream=None):
        proc = subprocess.run(["sh", "-c", text], capture_output=True, text=True)
        return SimpleNamespace(stdout=proc.stdout, stderr=proc.stderr, return_code=proc.returncode)

    def put(self, local, remote):
        shutil.copyfile(local, remote)


def layer_aware(connection, build: Engine, host: Engine, image_id: str, scratch: Path) -> Transfer:
    counting = Counting(connection)
    t0 = time.monotonic()
    line = images.ship(Runner(counting), host.socket, image_id, scratch, build.env, remote_dir="/tmp")
    wall = time.monotonic() - t0
    if host.image_id(image_id) != image_id:
        raise RuntimeError(f"layer-aware: {image_id} is not on the host after `{line}`")
    return Transfer("layer-aware (shipshape.images.ship)", counting.sent, round(wall, 3), line)


def whole_image(ssh: list[str] | None, build: Engine, host: Engine, image_id: str) -> Transfer:
    """docker save | zstd -T0 | ssh 'zstd -d | docker load', the bytes counted between zstd and ssh."""
    remote = f"zstd -dcq | docker -H {host.url} load -q"
    t0 = time.monotonic()
    save = subprocess.Popen(["docker", "-H", build.url, "save", image_id], stdout=subprocess.PIPE)
    zstd = subprocess.Popen(COMPRESS["zstd"], stdin=save.stdout, stdout=subprocess.PIPE)
    save.stdout.close()
    load = subprocess.Popen([*ssh, remote] if ssh else ["sh", "-c", remote], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sent = 0
    while chunk := zstd.stdout.read(1 << 20):
        sent += len(chunk)
        load.stdin.write(chunk)
    out, err = load.communicate()  # closes load's stdin: end of the stream
    wall = time.monotonic() - t0
    if save.wait() or zstd.wait() or load.returncode or f"Loaded image ID: {image_id}" not in out.decode():
        raise RuntimeError(f"whole image: {out.decode()} {err.decode()}")
    return Transfer("whole image (docker save | zstd | ssh docker load)", sent, round(wall, 3))

# ---------------------------------------------------------------- run


HOW = """How measured: release 1 is put on the host first (not measured). Then, {rounds} rounds, each method
once per round in alternating order, each starting from a host that has release 1 and not release 2
(release 2 is removed from the host engine, by id, before every transfer). bytes sent: layer-aware =
every byte handed to the connection (command texts + the uploaded archive), whole image = the zstd stream
piped into ssh; SSH's own framing and encryption are not counted for either. wall: from the call to the
image being loaded on the host (layer-aware: local inspect, the host question, docker save of the whole
image, rewrite + zstd, SFTP upload, zstd -t, zstd -d | docker load, id check; whole image: the streamed
pipeline to docker load's exit). Both use a warm SSH connection (layer-aware: one open Fabric
connection, SFTP on it; whole image: `ssh` through a ControlMaster opened before timing) to
{where}. zstd -T0 at its default level on both. Medians of the rounds; every round is in the JSON."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--base", help="base image on the build engine (default: shipshape.baseimage.ensure)")
    parser.add_argument("--app", choices=sorted(SAMPLES), default="python", help="which sample app to ship")
    parser.add_argument("--build-host", help="the build engine, e.g. unix:///run/docker.sock (default: start one)")
    parser.add_argument("--target-host", help="the host's engine (default: start one)")
    parser.add_argument("--no-ssh", action="store_true", help="run the host side with sh here, not over SSH")
    args = parser.parse_args()
    began = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="shipshape-image-bench-", dir="/var/tmp"))
    engines: list[Engine] = []
    try:
        build = Engine("build", args.build_host, scratch)
        engines.append(build)
        host = Engine("host", args.target_host, scratch)
        engines.append(host)
        document = run(args, build, host, scratch)
    finally:
        for engine in engines:
            engine.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    document["run_s"] = round(time.monotonic() - began, 1)
    out = REPO / "bench" / "results" / f"image-transfer-{args.app}-{date.today().isoformat()}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwritten: {out.relative_to(REPO)} (whole run {document['run_s']} s)")


def run(args, build: Engine, host: Engine, scratch: Path) -> dict:
    base = args.base or baseimage.ensure(build.env)
    first, second = (build_release(build, base, args.app, scratch, n) for n in (1, 2))
    if args.no_ssh:
        connection, ssh, where = LocalShell(), None, "this machine (--no-ssh: sh, no SSH)"
    else:
        from shipshape.remote import connect

        subprocess.run([str(REPO / "scripts" / "local-host.sh")], check=True, capture_output=True)
        connection = connect(SimpleNamespace(address="127.0.0.1", user="root", port=2222,
                                             key=".local/ssh/id_ed25519"), REPO)
        subprocess.run([*SSH, "true"], check=True)  # opens the ControlMaster the whole-image path reuses
        ssh, where = SSH, "the local sshd (127.0.0.1:2222, scripts/local-host.sh)"
    workdir = scratch / "ship"
    workdir.mkdir()
    first_line = images.ship(Runner(connection), host.socket, first, workdir, build.env, remote_dir="/tmp")
    raw = len(subprocess.run(["docker", "-H", build.url, "save", second], capture_output=True).stdout)
    rounds: dict[str, list[Transfer]] = {"layered": [], "whole": []}
    for n in range(args.rounds):
        for method in (("layered", "whole") if n % 2 == 0 else ("whole", "layered")):
            host.cli("rmi", second, check=False)
            if method == "layered":
                rounds[method].append(layer_aware(connection, build, host, second, workdir))
            else:
                rounds[method].append(whole_image(ssh, build, host, second))
    layered, whole = median(rounds["layered"]), median(rounds["whole"])
    save_s = []  # the floor under the layer-aware wall: docker save exports every layer, sent or not
    for _ in range(args.rounds):
        t0 = time.monotonic()
        build.cli("save", "-o", str(workdir / "save-alone.tar"), second)
        save_s.append(time.monotonic() - t0)
        (workdir / "save-alone.tar").unlink()
    layers = build.cli("image", "inspect", "--format", "{{len .RootFS.Layers}}", second).stdout.strip()
    how = HOW.format(rounds=args.rounds, where=where)
    print(f"image: {SAMPLES[args.app][0]} on {base}, {layers} layers, {raw / 1e6:.0f} MB as docker save writes it; "
          f"release 1 shipped first: {first_line}\n")
    print(table(layered, whole, raw), verdict(layered, whole),
          f"layer-aware said: {layered.detail}\nof its wall time, `docker save -o FILE` of the whole image alone "
          f"takes {statistics.median(save_s):.2f} s (median of {args.rounds})", how, sep="\n\n")
    sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    return {"date": date.today().isoformat(), "repo_sha": sha, "cpus": os.cpu_count(), "base": base,
            "app": SAMPLES[args.app][0], "changed": SAMPLES[args.app][1],
            "layers": int(layers), "raw_bytes": raw, "first_release": first_line, "target_ratio": TARGET,
            "median": {"layered": asdict(layered), "whole": asdict(whole)},
            "rounds": {k: [asdict(t) for t in v] for k, v in rounds.items()},
            "bytes_ratio": round(whole.bytes_sent / max(layered.bytes_sent, 1), 1),
            "docker_save_alone_s": [round(x, 3) for x in save_s],
            "how_measured": " ".join(how.split())}


if __name__ == "__main__":
    main()
