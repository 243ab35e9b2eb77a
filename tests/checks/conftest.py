"""Fixtures for driving `pytest checks/` against stacks built in a temporary project root."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.support.services import free_port

from .support import REPO


@pytest.fixture
def project(tmp_path):
    """Factory: a temporary project root (SHIPSHAPE_ROOT) holding Pulumi.<name>.yaml and .secrets/<name>.env."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(REPO / "Pulumi.yaml", root / "Pulumi.yaml")

    def make(name: str, config: dict, secrets: dict[str, str] | None = None) -> Path:
        (root / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump({"config": config}))
        if secrets:
            (root / ".secrets").mkdir(exist_ok=True)
            (root / ".secrets" / f"{name}.env").write_text("".join(f"{k}={v}\n" for k, v in secrets.items()))
        return root

    return make


@pytest.fixture
def unused_port() -> int:
    return free_port()
