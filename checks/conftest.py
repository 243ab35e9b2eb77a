"""Post-deploy checks: `pytest checks/ --stack NAME` verifies a deployed stack and writes CHECKLIST.md.

Fixtures here are session-scoped: one SSH connection, one facts round trip, one login per role.
"""
from __future__ import annotations

import pytest

from checks.checklist import SECRETS, ChecklistReporter
from shipshape.layout import layout_for
from shipshape.stackfile import ConfigError, find_root, load_stack

STACK = pytest.StashKey()
pytest_plugins = ["checks.fixtures_host", "checks.fixtures_http"]


def pytest_addoption(parser):
    group = parser.getgroup("shipshape", "shipshape post-deploy checks")
    group.addoption("--stack", default="local", help="stack to verify: reads Pulumi.<stack>.yaml (default: local)")
    group.addoption("--checklist", default=None,
                    help="where to write the checklist (default: shipshape:checks.checklist, CHECKLIST.md)")


@pytest.hookimpl(tryfirst=True)  # before junitxml's own pytest_configure reads --junitxml
def pytest_configure(config):
    try:
        stack = load_stack(config.getoption("--stack"))
    except ConfigError as error:
        raise pytest.UsageError(f"config error:\n{error}") from None
    config.stash[STACK] = stack
    config.stash[SECRETS] = []
    root = find_root()
    if not config.option.xmlpath:
        config.option.xmlpath = str(root / stack.checks.junit)
    checklist = config.getoption("--checklist") or str(root / stack.checks.checklist)
    config.pluginmanager.register(ChecklistReporter(config, checklist, stack), "shipshape-checklist")


def pytest_generate_tests(metafunc):
    """Checks parametrized by the stack: one per configured role and per app module."""
    stack = metafunc.config.stash[STACK]
    if "role" in metafunc.fixturenames:
        metafunc.parametrize("role", sorted(stack.checks.accounts))
    if "module" in metafunc.fixturenames:
        metafunc.parametrize("module", stack.app.modules)


@pytest.fixture(scope="session")
def stack(pytestconfig):
    """The validated stack under check."""
    return pytestconfig.stash[STACK]


@pytest.fixture(scope="session")
def layout(stack):
    return layout_for(stack)


@pytest.fixture(scope="session")
def secrets(pytestconfig) -> list:
    """Every secret value the run has read; the checklist masks them all."""
    return pytestconfig.stash[SECRETS]


@pytest.fixture
def check(request):
    """Record what a check looked at (`check.target(...)`) and what it saw (`check.detail(...)`)."""
    return Check(request.node.user_properties)


class Check:
    """Writes to the test's user_properties: the checklist and the JUnit XML both read them."""

    def __init__(self, properties: list):
        self._properties = properties

    def target(self, text) -> None:
        self._properties.append(("target", str(text)))

    def detail(self, text) -> None:
        self._properties.append(("detail", str(text)))

