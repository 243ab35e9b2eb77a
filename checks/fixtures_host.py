"""Host fixtures: one SSH connection and one facts round trip for the whole run."""
from __future__ import annotations

import pytest

from checks.hosts import TestinfraConnection, testinfra_host
from shipshape.facts import facts_script, parse_facts
from shipshape.remote import RemoteError, Runner
from shipshape.stackfile import find_root

SSH_COMMANDS = "ssh_commands"


@pytest.fixture(scope="session")
def host_runner(stack, record_testsuite_property):
    """A Runner over testinfra's SSH backend; Cloud Run stacks have no host, so host checks skip."""
    if stack.is_cloud:
        pytest.skip(f"stack {stack.name} runs on Cloud Run: there is no host to check (HTTP checks still run)")
    runner = Runner(TestinfraConnection(testinfra_host(stack, find_root())))
    yield runner
    # The benchmark reads this from the JUnit XML: SSH commands the whole run issued.
    record_testsuite_property(SSH_COMMANDS, runner.count)


@pytest.fixture(scope="session")
def facts(stack, layout, host_runner):
    """Every host fact, gathered by one command (see shipshape/facts.py)."""
    try:
        return parse_facts(host_runner.run(facts_script(stack, layout)).stdout)
    except (RemoteError, RuntimeError) as error:  # testinfra raises RuntimeError when ssh itself fails
        pytest.fail(f"could not gather host facts over SSH: {error}", pytrace=False)
