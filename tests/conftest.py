"""Project-wide pytest configuration: real-service fixtures live in tests/support/services.py."""

pytest_plugins = ["tests.support.services", "tests.support.dockerd"]
