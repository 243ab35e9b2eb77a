"""Helpers for the infra tests: stacks from the shipped files (optionally varied), run under mocks."""
from __future__ import annotations

import copy
import functools
from pathlib import Path

import pytest
import yaml

from infra.mocks import ProgramRun, run_program
from infra.stack import ProgramInputs, declare
from shipshape.config import Stack
from shipshape.stackfile import find_root, parse_stack

ROOT = find_root(Path(__file__).resolve().parent)
SCRIPT = "#!/bin/bash\nset -euo pipefail\necho provisioned-by-test\n"


def stack_document(name: str, **sections) -> dict:
    """Pulumi.<name>.yaml as a document, with `shipshape:<section>` mappings merged over it."""
    document = copy.deepcopy(yaml.safe_load((ROOT / f"Pulumi.{name}.yaml").read_text()))
    config = document["config"]
    for section, value in sections.items():
        key = f"shipshape:{section}"
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    return document


def variant(name: str, **sections) -> Stack:
    return parse_stack(stack_document(name, **sections), name, f"Pulumi.{name}.yaml")


def run_stack(stack: Stack, script: str = SCRIPT) -> ProgramRun:
    inputs = ProgramInputs(root=ROOT, resolve=lambda ref: f"<{ref}>", provision_script=script,
                           private_key="test-key", skip_push=True)
    return run_program(lambda: declare(stack, inputs), stack.name, gcp_project=stack.gcp.project)


@functools.cache
def shipped(name: str) -> ProgramRun:
    return run_stack(variant(name))


@pytest.fixture(params=["dev", "prod"])
def cloud_stack(request) -> tuple[str, ProgramRun]:
    return request.param, shipped(request.param)
