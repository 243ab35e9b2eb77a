"""Pushing a release image to the stack's registry (Artifact Registry on Cloud Run stacks).

    ref = push(local="shipshape/sample:<artifact>", repository="europe-west1-docker.pkg.dev/p/sample/sample",
               tag=release_id, token=credentials.token, log=info)
    # -> "europe-west1-docker.pkg.dev/p/sample/sample@sha256:..." (what the revision runs: by digest)

The access token reaches `docker push` through a throwaway DOCKER_CONFIG (Artifact Registry's documented
`oauth2accesstoken` user), so nothing is written to the user's ~/.docker and no token appears in argv
or output. The engine sends it only when the registry asks for credentials.
"""
from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

from shipshape.build import BuildError

DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")


def docker_config(directory: Path, registry_host: str, token: str | None) -> Path:
    """config.json authenticating `registry_host` with the token (none: an empty config)."""
    auths = {}
    if token:
        auths[registry_host] = {"auth": base64.b64encode(f"oauth2accesstoken:{token}".encode()).decode()}
    path = directory / "config.json"
    path.write_text(json.dumps({"auths": auths}))
    path.chmod(0o600)
    return path


def push_commands(local: str, remote: str) -> list[list[str]]:
    return [["docker", "tag", local, remote], ["docker", "push", remote]]


def push(local: str, repository: str, tag: str, token: str | None, log=print, env: dict | None = None) -> str:
    """Tag `local` as repository:tag, push it, return repository@digest. BuildError with docker's words."""
    remote = f"{repository}:{tag}"
    with tempfile.TemporaryDirectory(prefix="shipshape-push-") as tmp:
        docker_config(Path(tmp), repository.split("/")[0], token)
        run_env = {**os.environ, **(env or {}), "DOCKER_CONFIG": tmp}
        out = ""
        for argv in push_commands(local, remote):
            proc = subprocess.run(argv, capture_output=True, text=True, env=run_env)
            if proc.returncode != 0:
                raise BuildError(f"{' '.join(argv)} failed: {(proc.stderr or proc.stdout).strip()[-500:]}")
            out = proc.stdout
    found = DIGEST.search(out)
    if not found:
        raise BuildError(f"docker push {remote} printed no digest: {out.strip()[-300:]}")
    log(f"pushed {remote} ({found.group(1)[:19]})")
    return f"{repository}@{found.group(1)}"
