"""Project-wide pytest configuration: real-service fixtures live in tests/support/ (services.py:
PostgreSQL and Redis; dockerd.py: the Docker engines; images.py: the base and sample images).

Markers: `slow` is set here on every test that provisions real daemons or stacks (e2e, the checks'
break suite, docker, images); `docker` on those needing a Docker engine. Inner loop:
    .venv/bin/python -m pytest tests -m "not slow" -q      # pure layers, a few seconds
"""
import os

import pytest

# Without credentials, google-auth looks for a GCE metadata server at 169.254.169.254, off loopback: never
# from a test, nor from the `fab` and `pytest checks/` processes tests start (they inherit this). It must
# be exactly "true" (google-auth 2.62 compares the string), and set before google.auth is imported.
os.environ["NO_GCE_CHECK"] = "true"

pytest_plugins = ["tests.support.services", "tests.support.dockerd", "tests.support.images",
                  "tests.support.registry", "tests.support.fake_gcp.fixture"]

SLOW = ("e2e", "checks", "docker", "images", "bench", "app", "node_app", "backup", "lock", "remote", "nginx")


def pytest_collection_modifyitems(items):
    for item in items:
        parts = item.path.parts
        suite = parts[parts.index("tests") + 1] if "tests" in parts else ""
        real = any(name in getattr(item, "fixturenames", ()) for name in
                   ("postgres_server", "redis_server", "docker_host", "docker_build", "local_stack",
                    "fake_gcp", "docker_cloudrun", "registry", "cloudrun_stack"))
        if suite in SLOW or real:
            item.add_marker(pytest.mark.slow)
        if suite in ("docker", "images") or {"docker_host", "fake_gcp", "cloudrun_stack"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.docker)
