"""Post-deploy checks: `pytest checks/ --stack NAME` verifies a deployed stack and writes CHECKLIST.md.

Fixtures here are session-scoped: one SSH connection, one facts round trip, one login per role.
"""
from __future__ import annotations

import pytest

from checks.checklist import SECRETS, ChecklistReporter
from shipshape.layout import layout_for
from shipshape.stackfile import ConfigError, find_root, load_stack

STACK = pytest.StashKey()
pytest_plugins = ["checks.fixtures_host", "checks.fixtures_http", "checks.fixtures_cloud"]
WHY_EMPTY = {"role": "no check accounts configured (shipshape:checks.accounts)",
             "module": "the app declares no modules (shipshape:app.modules is empty)"}
ABSENT = "(none)"  # what an empty {role} / {module} shows in a skipped check's title


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
    """Checks parametrized by the stack: one per configured role and per app module.

    With no accounts or no modules there is nothing to parametrize over: such a check becomes one
    SKIP row that says which setting is empty (pytest alone would say "got empty parameter set").
    """
    stack = metafunc.config.stash[STACK]
    values = {"role": sorted(stack.checks.accounts), "module": list(stack.app.modules)}
    used = [name for name in values if name in metafunc.fixturenames]
    empty = [WHY_EMPTY[name] for name in used if not values[name]]
    if empty:
        # One row, its title showing what there is: "`/api/notes, /api/reports` answers 200 to ... `(none)`".
        shown = [", ".join(values[name]) or ABSENT for name in used]
        metafunc.parametrize(used, [pytest.param(*shown, id="none", marks=pytest.mark.skip(reason="; ".join(empty)))])
        return
    for name in used:
        metafunc.parametrize(name, values[name])


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

