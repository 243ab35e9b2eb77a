"""Post-deploy checks: `pytest checks/ --stack NAME`."""
from __future__ import annotations

import pytest

from shipshape.stackfile import ConfigError, load_stack


def pytest_addoption(parser):
    group = parser.getgroup("shipshape", "shipshape post-deploy checks")
    group.addoption("--stack", default="local", help="stack to verify: reads Pulumi.<stack>.yaml (default: local)")


@pytest.fixture(scope="session")
def stack(request):
    """The validated stack under check."""
    try:
        return load_stack(request.config.getoption("--stack"))
    except ConfigError as error:
        pytest.exit(f"config error:\n{error}", returncode=2)
