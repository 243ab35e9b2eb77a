"""pytest plugin: the Cloud Run fake as a session fixture, on its own Docker engine (docker_cloudrun).

    fake_gcp      FakeGcp: the running fake (one process for the session; reset() between tests)

    def test_deploy(fake_gcp, tmp_path, monkeypatch):
        for key, value in fake_gcp.env(tmp_path).items():     # ADC file, HTTPS_PROXY, CA bundle
            monkeypatch.setenv(key, value)
        fake_gcp.reset()
        fake_gcp.seed(service="shop", image=image, env={"GREETING": "hi"})
        client = run_v2.ServicesClient(transport="rest", client_options=fake_gcp.client_options)
"""
from __future__ import annotations

import json
import os
import secrets
import selectors
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from google.cloud import run_v2

REPO = Path(__file__).resolve().parents[3]
PROJECT, REGION = "shipshape-test", "europe-west1"
LATEST = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class FakeGcp:
    """A running fake: its endpoints, its refresh token, and its control API."""

    run_endpoint: str
    token_uri: str
    monitoring_endpoint: str
    https_proxy: str
    ca_file: str
    refresh_token: str
    process: subprocess.Popen
    project: str = PROJECT
    region: str = REGION

    @property
    def client_options(self) -> dict:
        """For run_v2.*Client(transport="rest", client_options=...)."""
        return {"api_endpoint": self.run_endpoint}

    def credentials_file(self, tmp_path: Path, valid: bool = True) -> Path:
        """An `authorized_user` ADC file as `gcloud auth application-default login` writes it (a revoked
        refresh token unless valid). google-auth sends its refresh to https://oauth2.googleapis.com/token
        whatever the file says: use it with env(), which routes that host to the fake."""
        path = Path(tmp_path) / ("adc.json" if valid else "adc-invalid.json")
        path.write_text(json.dumps({
            "type": "authorized_user", "client_id": "fake-client.apps.googleusercontent.com",
            "client_secret": "fake-secret", "quota_project_id": self.project,
            "refresh_token": self.refresh_token if valid else "1//revoked-" + secrets.token_hex(8)}))
        path.chmod(0o600)
        return path

    def env(self, tmp_path: Path, valid: bool = True) -> dict[str, str]:
        """What a process (this one via monkeypatch, or `fab`) needs to reach the fake with real ADC:
        the credentials file, the fake as HTTPS proxy for the token host, its CA, loopback unproxied."""
        return {"GOOGLE_APPLICATION_CREDENTIALS": str(self.credentials_file(tmp_path, valid)),
                "HTTPS_PROXY": self.https_proxy, "https_proxy": self.https_proxy,
                "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
                "REQUESTS_CA_BUNDLE": self.ca_file}

    def seed(self, project: str | None = None, region: str | None = None, service: str = "app",
             image: str = "", env: dict[str, str] | None = None, port: int = 8080,
             readiness_path: str = "/ready", health_path: str = "/health",
             migrate_command: str = "alembic upgrade head", min_instances: int = 0, public: bool = False,
             secret_env: dict[str, str] | None = None, max_instances: int = 2,
             command: list[str] | None = None) -> dict:
        """The service (one revision serving 100 % via LATEST) and its `<service>-migrate` job, as
        infra/service.py declares them. Waits for the revision to serve; raises if it does not.
        `command` (not in infra: the image's CMD runs there) is for images that are not an app."""
        parent = f"projects/{project or self.project}/locations/{region or self.region}"
        envs = [run_v2.EnvVar(name=name, value_source=run_v2.EnvVarSource(
            secret_key_ref=run_v2.SecretKeySelector(secret=secret, version="latest")))
            for name, secret in sorted((secret_env or {}).items())]
        envs += [run_v2.EnvVar(name=key, value=value) for key, value in sorted((env or {}).items())]
        limits = run_v2.ResourceRequirements(limits={"cpu": "1", "memory": "512Mi"})
        account = f"{service}-run@{project or self.project}.iam.gserviceaccount.com"
        vpc = run_v2.VpcAccess(egress=run_v2.VpcAccess.VpcEgress.PRIVATE_RANGES_ONLY, network_interfaces=[
            run_v2.VpcAccess.NetworkInterface(network="shipshape-vpc", subnetwork="shipshape-subnet")])
        container = run_v2.Container(
            image=image, command=command or [], env=envs, ports=[run_v2.ContainerPort(container_port=port)],
            resources=run_v2.ResourceRequirements(limits=limits.limits, cpu_idle=True, startup_cpu_boost=True),
            startup_probe=run_v2.Probe(http_get=run_v2.HTTPGetAction(path=health_path, port=port),
                                       period_seconds=5, timeout_seconds=3, failure_threshold=24),
            liveness_probe=run_v2.Probe(http_get=run_v2.HTTPGetAction(path=health_path, port=port),
                                        period_seconds=15, timeout_seconds=3, failure_threshold=3))
        service_pb = run_v2.Service(
            name=f"{parent}/services/{service}", ingress=run_v2.IngressTraffic.INGRESS_TRAFFIC_ALL,
            template=run_v2.RevisionTemplate(
                service_account=account, vpc_access=vpc, max_instance_request_concurrency=80,
                timeout="60s", containers=[container], scaling=run_v2.RevisionScaling(
                    min_instance_count=min_instances, max_instance_count=max_instances)),
            traffic=[run_v2.TrafficTarget(type_=LATEST, percent=100)])
        job_container = run_v2.Container(image=image, env=envs, resources=limits,
                                         command=shlex.split(migrate_command))
        job = run_v2.Job(name=f"{parent}/jobs/{service}-migrate", template=run_v2.ExecutionTemplate(
            task_count=1, template=run_v2.TaskTemplate(service_account=account, vpc_access=vpc, max_retries=0,
                                                       timeout="600s", containers=[job_container])))
        seeded = self._control("POST", "seed", {
            "service": json.loads(run_v2.Service.to_json(service_pb)), "job": json.loads(run_v2.Job.to_json(job)),
            "invokers": ["allUsers"] if public else []})
        if "serviceError" in seeded:
            raise RuntimeError(f"seeding {service} failed: {seeded['serviceError']}")
        return seeded

    def reset(self) -> None:
        """Forget every resource and operation; stop every revision and execution container."""
        self._control("POST", "reset")

    def state(self) -> dict:
        """Everything the fake holds, as JSON: services (with revisions and IAM), jobs (with executions)."""
        return self._control("GET", "state")

    def job_logs(self, job: str | None = None, execution: str | None = None) -> list[dict]:
        """Executions (oldest first) with each task's {index, attempt, exitCode, output}."""
        query = {k: v for k, v in (("job", job), ("execution", execution)) if v}
        return self._control("GET", "logs?" + urllib.parse.urlencode(query))["executions"]

    def revision_log(self, revision: str) -> str:
        return self._control("GET", "logs?" + urllib.parse.urlencode({"revision": revision}))["log"]

    def set_secrets(self, **values: str | None) -> None:
        """Secret Manager: secret id -> value (None deletes)."""
        self._control("POST", "secrets", values)

    def kill_revision(self, revision: str) -> bool:
        """SIGKILL a revision's container, as a crash would."""
        return self._control("POST", "kill", {"revision": revision})["killed"]

    def _control(self, method: str, action: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.run_endpoint}/_fake/{action}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with _DIRECT.open(request, timeout=600) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            raise RuntimeError(f"fake_gcp {method} /_fake/{action}: {error.code} {error.read().decode()}") from None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()  # Popen.kill: this child's own pid, never 0
                self.process.wait()


def start(docker_host: str, log: Path, project: str = PROJECT, region: str = REGION,
          secrets_: dict[str, str] | None = None, timeout: float = 60) -> FakeGcp:
    """Start `python -m tests.support.fake_gcp` and wait for its ready line."""
    refresh_token = "1//fake-" + secrets.token_urlsafe(16)
    command = [sys.executable, "-m", "tests.support.fake_gcp", "--project", project, "--region", region,
               "--docker-host", docker_host, "--refresh-token", refresh_token,
               *(f"--secret={name}={value}" for name, value in (secrets_ or {}).items())]
    with open(log, "ab") as stderr:
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=stderr,
                                   stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    line = _first_line(process, timeout)
    if not line:
        process.kill()
        raise RuntimeError(f"the Cloud Run fake did not start in {timeout:.0f} s:\n{log.read_text()[-3000:]}")
    ready = json.loads(line)
    return FakeGcp(ready["run_endpoint"], ready["token_uri"], ready["monitoring_endpoint"], ready["https_proxy"],
                   ready["ca_file"], refresh_token, process, project, region)


def _first_line(process: subprocess.Popen, timeout: float) -> str:
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if selector.select(timeout=0.5):
            return process.stdout.readline().decode().strip()
    return ""


@pytest.fixture(scope="session")
def fake_gcp(docker_cloudrun, tmp_path_factory):
    """The Cloud Run fake (API, router, monitoring) on the docker_cloudrun engine, for the session."""
    log = tmp_path_factory.mktemp("fake_gcp") / "fake_gcp.log"
    fake = start(docker_cloudrun.host, log)
    yield fake
    fake.stop()
