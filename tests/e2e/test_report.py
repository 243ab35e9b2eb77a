"""The deploy report end to end: one real deploy on the local stack, then `fab releases --report` renders it."""
from __future__ import annotations

import json

import pytest
import yaml

from tests.e2e.conftest import ROOT, host_sh

pytestmark = pytest.mark.timeout(300)


def test_a_deploy_records_a_report_that_fab_releases_renders(local_stack, tmp_path):
    slots = json.loads(host_sh(f"cat {ROOT}/state/slots.json 2>/dev/null || echo '{{}}'"))
    stack = yaml.safe_load((local_stack.root / "Pulumi.local.yaml").read_text())["config"]
    expected = stack["shipshape:canary"]["steps"] if slots.get("live") else [100]  # a first deploy: one step
    sha = local_stack.commit("e2e: report", {"VERSION": "report\n"})
    local_stack.fab("deploy")
    entry = json.loads(host_sh(f"tail -n 1 {ROOT}/state/history.jsonl"))
    assert (entry["git_sha"], entry["outcome"]) == (sha, "success")
    steps = entry["report"]["steps"]
    assert [s["percent"] for s in steps] == expected and all(s["timeline"] for s in steps)
    assert [p["name"] for p in entry["report"]["phases"]][-2:] == ["canary", "promote"]

    shown = local_stack.fab("releases", "--report", entry["release"], "--out", str(tmp_path))
    md, png = (tmp_path / f"{entry['release']}.{ext}" for ext in ("md", "png"))
    assert shown.stdout.split() == [str(md), str(png)]
    text = md.read_text()
    assert f"`{sha}`" in text and f"![canary chart]({png.name})" in text
    for s in steps:
        assert f"| {s['percent']}% | advance | {s['elapsed']:.2f} | {s['candidate']['requests']} |" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
