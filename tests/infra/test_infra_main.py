"""The real entry point (`pulumi up` runs infra/__main__.py), run under mocks with CLI-style config."""
from __future__ import annotations

import json
import runpy

from pulumi.runtime import config as pulumi_config

from infra.mocks import run_program
from tests.infra.conftest import ROOT, stack_document


def test_main_reads_cli_config_resolves_secret_refs_and_declares_the_stack(monkeypatch):
    monkeypatch.setenv("SHIPSHAPE_WEBHOOK_URL", "https://hooks.example/T0/B0/xyz")
    document = stack_document("dev", gcp={"max_instances": 3})

    def program():
        pulumi_config.set_all_config(
            {k: v if isinstance(v, str) else json.dumps(v) for k, v in document["config"].items()})
        runpy.run_path(str(ROOT / "infra" / "__main__.py"))
        return {}

    try:
        run = run_program(program, "dev")
    finally:
        pulumi_config.set_all_config({})
    service = run.one("gcp:cloudrunv2/service:Service").state
    assert service["template"]["scaling"]["maxInstanceCount"] == 3
    channel = run.one("gcp:monitoring/notificationChannel:NotificationChannel").state
    assert channel["labels"]["url"] == "https://hooks.example/T0/B0/xyz"
    image = run.one("docker:index/image:Image").state
    assert image["skipPush"] is False  # a real run pushes to Artifact Registry
