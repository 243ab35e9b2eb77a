"""The offline review: every policy is proven by a config that violates it (the review fails naming
resource and rule); the shipped stacks pass; invalid config fails before any resource is declared."""
from __future__ import annotations

import types

import pytest
import yaml

from infra import policies, review
from tests.infra.conftest import SCRIPT, stack_document

VPS_WITH_VM = {"target": "vps", "gcp": {"create_vm": True, "ssh_allow": ["203.0.113.4/32"]}}

VIOLATIONS = [
    # (rule, base stack, config overrides, resource the finding must name)
    ("db-public-ip", "dev", {"database": {"public_ip": True}}, "db-instance"),
    ("prod-deletion-protection", "prod", {"database": {"deletion_protection": False}}, "db-instance"),
    ("prod-backups", "prod", {"database": {"backups": False}}, "db-instance"),
    ("prod-backups", "prod", {"database": {"point_in_time_recovery": False}}, "db-instance"),
    ("prod-backups", "dev", {"gcp": {"production": True}, "database": {"deletion_protection": True,
                                                                      "backups": False}}, "db-instance"),
    ("plaintext-secret-env", "dev", {"gcp": {"env": {"API_TOKEN": "abc123"}}}, "app-service"),
    ("plaintext-secret-env", "dev", {"gcp": {"env": {"UPSTREAM": "https://bob:hunter2@api.example"}}},
     "app-migrate"),
    ("primitive-role", "dev", {"gcp": {"service_roles": ["roles/editor"]}}, "app-role-editor"),
    ("public-invoker", "dev", {"gcp": {"public": False, "invokers": ["allUsers"]}}, "app-invoker-allusers"),
    ("ssh-open-world", "local", {**VPS_WITH_VM, "gcp": {"create_vm": True, "ssh_allow": ["0.0.0.0/0"]}},
     "host-ssh"),
    ("redis-no-auth", "dev", {"redis": {"auth": False}}, "cache-redis"),
    ("dev-budget", "dev", {"database": {"tier": "db-custom-16-65536", "ha": True}}, "stack"),
]


@pytest.fixture(autouse=True)
def provision_module(monkeypatch):
    """The shared provisioning module belongs to another piece; the review gets a literal script."""
    fake = types.ModuleType("shipshape.provision")
    fake.provision_script = lambda stack: SCRIPT
    monkeypatch.setitem(__import__("sys").modules, "shipshape.provision", fake)


def write_stack(root, name, document):
    (root / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump(document))


def review_of(tmp_path, capsys, base, **overrides):
    write_stack(tmp_path, base, stack_document(base, **overrides))
    code = review.main(["--stack", base, "--root", str(tmp_path)])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("rule, base, overrides, resource", VIOLATIONS,
                         ids=[f"{v[0]}-{i}" for i, v in enumerate(VIOLATIONS)])
def test_each_policy_fails_the_review_naming_resource_and_rule(tmp_path, capsys, rule, base, overrides, resource):
    code, out, _ = review_of(tmp_path, capsys, base, **overrides)
    assert code == 1
    assert f"[{rule}] {resource}:" in out


def test_every_rule_is_proven_by_a_violation():
    assert {v[0] for v in VIOLATIONS} == set(policies.RULES)


@pytest.mark.parametrize("stack", ["dev", "prod", "local"])
def test_shipped_stacks_pass_the_review(tmp_path, capsys, stack):
    code, out, _ = review_of(tmp_path, capsys, stack)
    assert code == 0, out
    assert f"all {len(policies.RULES)} rules pass" in out


def test_review_prints_tree_settings_and_dated_costs(tmp_path, capsys):
    code, out, _ = review_of(tmp_path, capsys, "prod")
    assert code == 0
    assert "POSTGRES_17 db-custom-2-7680 REGIONAL public-ip=no backups=yes pitr=yes deletion-protection=yes" in out
    assert "STANDARD_HA 5 GB auth=yes transit=SERVER_AUTHENTICATION" in out
    assert "ignores template.containers[0].image" in out
    assert "prices 2026-11-21" in out and "435.96" in out


def test_review_never_prints_secret_values(tmp_path, capsys):
    _, out, _ = review_of(tmp_path, capsys, "prod")
    run = review.run_stack(review.load_stack("prod"), tmp_path)
    secrets = [r.state["result"] for r in run.of_type("random:index/randomPassword:RandomPassword")]
    secrets += [r.state["secretData"] for r in run.of_type("gcp:secretmanager/secretVersion:SecretVersion")]
    assert len(secrets) == 7 and all(secret not in out for secret in secrets)


INVALID = [
    # (overrides, key the message must name, words it must contain)
    ({"gcp": {"region": "moon-base"}}, "shipshape:gcp.region", "expected a GCP region"),
    ({"database": {"tier": "db-huge"}}, "shipshape:database.tier", "expected"),
    ({"database": {"tier": "db-custom-3-7680"}}, "shipshape:database.tier", "vCPUs must be 1 or an even"),
    ({"database": {"tier": "db-custom-2-100000"}}, "shipshape:database.tier", "0.9-6.5 GB per vCPU"),
    ({"redis": {"tier": "PREMIUM"}}, "shipshape:redis.tier", "expected 'BASIC' or 'STANDARD_HA'"),
    ({"gcp": {"min_instances": 5, "max_instances": 2}}, "shipshape:gcp", "exceeds max_instances"),
    ({"gcp": {"max_instances": 0}}, "shipshape:gcp.max_instances", "greater than or equal to 1"),
    ({"gcp": {"ssh_allow": ["everywhere"]}}, "shipshape:gcp.ssh_allow", "expected CIDR"),
    ({"gcp": {"env": {"lower": "x"}}}, "shipshape:gcp.env", "pattern"),
    ({"monitoring": {"channel": "slack"}}, "shipshape:monitoring", "expected slack_channel"),
    ({"monitoring": {"slack_token": "xoxb-plaintext"}}, "shipshape:monitoring.slack_token", "plaintext"),
]


@pytest.mark.parametrize("overrides, key, words", INVALID)
def test_invalid_config_fails_before_any_resource_is_declared(tmp_path, capsys, monkeypatch,
                                                              overrides, key, words):
    declared = []
    monkeypatch.setattr(review, "run_program", lambda *a, **k: declared.append(a))
    code, out, err = review_of(tmp_path, capsys, "dev", **overrides)
    assert code == 2 and not declared and out == ""
    assert "Pulumi.dev.yaml" in err and key in err and words in err


def test_a_failing_provision_script_is_reported_not_hidden(tmp_path, capsys, monkeypatch):
    def broken(stack):
        raise ValueError("no nginx template")
    monkeypatch.setattr(__import__("sys").modules["shipshape.provision"], "provision_script", broken)
    code, _, err = review_of(tmp_path, capsys, "local")
    assert code == 2 and "no nginx template" in err
