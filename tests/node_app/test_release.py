"""The release as a host has it: production dependencies only, and the README's stack settings."""
from __future__ import annotations

import json

from .conftest import APP_SRC, BUILD, CREATE_ACCOUNT, MIGRATE, START


def test_release_runs_without_dev_dependencies(node_release, running_node_app):
    installed = {p.name for p in (node_release / "node_modules").iterdir()}
    assert "typescript" not in installed
    assert {"pg", "redis", "prom-client", "node-pg-migrate"} <= installed
    assert running_node_app.proc.poll() is None


def test_dependencies_are_pinned_exactly():
    package = json.loads((APP_SRC / "package.json").read_text())
    for group in ("dependencies", "devDependencies"):
        loose = {name: v for name, v in package[group].items() if not v[0].isdigit()}
        assert not loose, f"{group} must pin exact versions: {loose}"
    lock = json.loads((APP_SRC / "package-lock.json").read_text())
    assert lock["packages"][""]["dependencies"] == package["dependencies"]


def test_readme_gives_the_commands_the_tests_run():
    readme = (APP_SRC / "README.md").read_text()
    for command in (BUILD, START, MIGRATE, CREATE_ACCOUNT):
        assert command in readme, command
