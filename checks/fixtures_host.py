"""Host fixtures: one SSH connection and one facts round trip for the whole run."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from checks.hosts import TestinfraConnection, testinfra_host
from shipshape.facts import facts_script, parse_facts
from shipshape.remote import RemoteError, Runner
from shipshape.stackfile import find_root

SSH_COMMANDS = "ssh_commands"


@pytest.fixture(scope="session")
def host_runner(stack, facts_pending, record_testsuite_property):
    """A Runner over testinfra's SSH backend; Cloud Run stacks have no host, so host checks skip."""
    if stack.is_cloud:
        pytest.skip(f"stack {stack.name} runs on Cloud Run: there is no host to check (HTTP checks still run)")
    try:
        runner = facts_pending.result()[0]
    except (RemoteError, RuntimeError) as error:  # testinfra raises RuntimeError when ssh itself fails
        pytest.fail(f"could not gather host facts over SSH: {error}", pytrace=False)
    yield runner
    # The benchmark reads this from the JUnit XML: SSH commands the whole run issued.
    record_testsuite_property(SSH_COMMANDS, runner.count)


@pytest.fixture(scope="session", autouse=True)
def facts_pending(stack, layout):
    """Start gathering host facts at session start, so the SSH round trip overlaps the HTTP checks."""
    if stack.is_cloud:
        yield None
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield pool.submit(_gather, stack, layout)


def _gather(stack, layout):
    runner = Runner(TestinfraConnection(testinfra_host(stack, find_root())))
    return runner, runner.run(facts_script(stack, layout)).stdout


@pytest.fixture(scope="session")
def facts(host_runner, facts_pending):
    """Every host fact, gathered by one command (see shipshape/facts.py); host_runner reports failures."""
    return parse_facts(facts_pending.result()[1])
