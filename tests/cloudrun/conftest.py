"""A Cloud Run stack on the fake (tests/support/fake_gcp): what `pulumi up` leaves, then real `fab` runs.

`cloudrun_stack` (module) seeds the fake with the service, its first revision and its migrate job as
infra/service.py declares them, with the sample image pushed to a real registry on loopback; `fab`
then runs as a user runs it: its own process, Application Default Credentials from a file whose token
endpoint is the fake's, the local build engine for `fab build`, images pushed with `docker push`.
"""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from google.api_core.client_options import ClientOptions
import google.auth
from google.cloud import run_v2

from shipshape import registry as pushing
from tests.e2e.conftest import FAB, REPO, LocalStack, http

PROJECT, REGION, APP = "shipshape-test", "europe-west1", "crsample"
STACK = "crtest"
MIGRATE = "alembic upgrade head"  # the sample's (shipshape:app.migrate's default)


@dataclass
class CloudRunStack(LocalStack):
    fake: object = None
    services: object = None   # a ServicesClient on the fake, for assertions and concurrent changes

    @property
    def name(self) -> str:
        return f"projects/{PROJECT}/locations/{REGION}/services/{APP}"

    def service(self) -> run_v2.Service:
        return self.services.get_service(name=self.name)

    def serving(self) -> dict[str, int]:
        return {t.revision: t.percent for t in self.service().traffic_statuses if t.percent}

    def job_image(self) -> str:
        jobs = self.fake.state()["jobs"]
        job = next(j["job"] for name, j in jobs.items() if name.endswith(f"/jobs/{APP}-migrate"))
        return job["template"]["template"]["containers"][0]["image"]

    def revisions(self) -> set[str]:
        service = next(s for name, s in self.fake.state()["services"].items() if name.endswith(f"/services/{APP}"))
        return {name.rsplit("/", 1)[-1] for name in service["revisions"]}

    def fab(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        return super().fab(*args, "--stack", STACK, check=check, timeout=timeout)

    def get(self, path: str, url: str | None = None) -> tuple[int, str]:
        if not getattr(self, "_uri", None):
            self._uri = self.service().uri
        return http(path, 5, url or self._uri)


def stack_config(clone: Path, repository: str, fake, canary: dict | None = None) -> dict:
    return {"config": {
        "shipshape:target": "cloudrun",
        "shipshape:app": {"name": APP, "repo": str(clone / "examples/app"), "port": 8080,
                          "migrate": MIGRATE},
        "shipshape:gcp": {"project": PROJECT, "region": REGION, "public": True, "min_instances": 0,
                          "registry": repository, "run_endpoint": fake.run_endpoint,
                          "monitoring_endpoint": f"http://{fake.monitoring_endpoint}"},
        "shipshape:canary": canary or {"steps": [50, 100], "interval": 2, "readiness_timeout": 60,
                                       "max_error_rate": 0.05},
        "shipshape:retention": {"releases": 3}}}


@pytest.fixture(scope="module")
def cloudrun_stack(request, tmp_path_factory, fake_gcp, registry, docker_build, python_app_image,
                   postgres_server, redis_server) -> CloudRunStack:
    root = tmp_path_factory.mktemp("cloudrun")
    clone = root / "repo"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    (root / "Pulumi.yaml").write_text((REPO / "Pulumi.yaml").read_text())
    repository = registry.repository(PROJECT, APP)
    (root / f"Pulumi.{STACK}.yaml").write_text(yaml.safe_dump(stack_config(clone, repository, fake_gcp)))
    # What `pulumi up` leaves: the image it built (tag latest), the service serving it, the migrate job.
    image = pushing.push(python_app_image.tag, f"{repository}/{APP}", "latest", None, log=lambda _: None,
                         env=docker_build.env)
    database = postgres_server.create_database(f"crsample_{request.module.__name__.rsplit('.', 1)[-1]}")
    env = {"DATABASE_URL": database, "REDIS_URL": redis_server.url, "SECRET_KEY": "cloudrun-test-key",
           "UVICORN_HOST": "127.0.0.1"}  # the fake's containers share the host's network: loopback only
    fake_gcp.seed(project=PROJECT, region=REGION, service=APP, image=image, env=env, port=8080,
                  readiness_path="/readyz", health_path="/healthz",
                  migrate_command=MIGRATE, min_instances=0, public=True)
    access = fake_gcp.env(root, valid=True)  # ADC file, and the proxy that takes Google's token URL to the fake
    os.environ.update(access)                 # this process' own client refreshes through it too
    credentials = access["GOOGLE_APPLICATION_CREDENTIALS"]
    creds, _ = google.auth.load_credentials_from_file(str(credentials), scopes=["https://www.googleapis.com/auth/cloud-platform"])
    services = run_v2.ServicesClient(credentials=creds, transport="rest",
                                     client_options=ClientOptions(api_endpoint=fake_gcp.run_endpoint))
    extra = {**docker_build.env, **access}  # NO_GCE_CHECK=true comes from tests/conftest.py
    stack = CloudRunStack(root, clone, app="examples/app", site="", extra_env=extra, fake=fake_gcp,
                          services=services)
    yield stack
    fake_gcp.reset()
    for key in access:
        os.environ.pop(key, None)


def fab_env(stack: CloudRunStack, **changes) -> dict:
    return {**stack.env(), **changes}


def run_fab(stack: CloudRunStack, *args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([str(FAB), *args, "--stack", STACK], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
