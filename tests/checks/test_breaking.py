"""Break one property of the real deployed local stack (the e2e one, see tests/e2e/conftest.py); that check fails and the others still pass.

Every break is restored in a `finally` before the assertions; the last test proves the stack is whole.
"""
from __future__ import annotations

import pytest

from .breaks import BREAKS
from .support import run_checks


def test_suite_uses_one_ssh_command(deployed_stack):
    # Its wall time (target < 3 s) is measured by bench/checks_bench.py, not asserted here.
    baseline = deployed_stack.baseline
    assert baseline.ssh_commands == 1
    assert "**PASS**" in baseline.checklist


@pytest.mark.parametrize("brk", BREAKS, ids=lambda b: b.name)
def test_break_fails_exactly_its_check(brk, deployed_stack, local_variant, tmp_path):
    stack, layout, runner = deployed_stack.stack, deployed_stack.layout, deployed_stack.runner
    facts = deployed_stack.facts()
    variant = brk.config or brk.secrets
    root = local_variant(brk.config, brk.secrets and brk.secrets(stack)) if variant else None
    broken = brk.apply(stack, layout, facts)
    try:
        if broken:
            runner.run_all(broken)
        if brk.shows:
            deployed_stack.wait_for(brk.shows(stack, facts))
        elif brk.restarts_app and brk.also == ():
            deployed_stack.wait_ready()
        run = run_checks(tmp_path, "local", root or deployed_stack.root)
    finally:
        restore = brk.restore(stack, layout, facts)
        if restore:
            runner.run_all(restore)
        if brk.restarts_app:
            deployed_stack.wait_ready()
    run.assert_fails_only(brk.fails, brk.also, deployed_stack.baseline, label=f"{brk.name}: ")


def test_stack_whole_after_the_breaks(deployed_stack, tmp_path):
    run = run_checks(tmp_path, "local", deployed_stack.root)
    assert not run.failing(), run.checklist
