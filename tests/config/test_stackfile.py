"""Stack files: the shipped ones load; each kind of mistake fails naming file, key and what was expected."""
from __future__ import annotations

import pytest
import yaml

from shipshape.config import Target
from shipshape.secrets import SecretRef, Sensitive, read_secrets_file
from shipshape.stackfile import ConfigError, load_stack, parse_stack


@pytest.mark.parametrize("stack, target", [("local", Target.local), ("dev", Target.cloudrun),
                                           ("prod", Target.cloudrun)])
def test_shipped_stacks_load(stack, target):
    assert load_stack(stack).target is target


def test_defaults_fill_what_a_user_leaves_out():
    stack = parse_stack({"config": {"shipshape:target": "vps"}}, "s", "Pulumi.s.yaml")
    assert stack.canary.steps == (10, 50, 100)
    assert stack.canary.max_error_rate == 0.05
    assert stack.retention.releases == 5
    assert stack.retention.backup_schedule == "0 3 * * *"
    assert stack.app.health_path == "/healthz"


INVALID = [
    # (config mapping, key the message must name, words it must contain)
    ({"shipshape:app": {"port": "eighty"}}, "shipshape:app.port", "'eighty'"),
    ({"shipshape:app": {"port": 70000}}, "shipshape:app.port", "70000"),
    ({"shipshape:target": "kubernetes"}, "shipshape:target", "'local', 'vps' or 'cloudrun'"),
    ({"shipshape:targte": "vps"}, "shipshape:targte", "unknown key"),
    ({"shipshape:app": {"nmae": "x"}}, "shipshape:app.nmae", "unknown key"),
    ({"shipshap:target": "vps"}, "shipshap:target", "unknown namespace"),
    ({"shipshape:canary": {"steps": [10, 150, 100]}}, "shipshape:canary.steps[1]", "150"),
    ({"shipshape:canary": {"steps": [50, 10, 100]}}, "shipshape:canary.steps", "rising percentages"),
    ({"shipshape:canary": {"steps": [10, 50]}}, "shipshape:canary.steps", "ending at 100"),
    ({"shipshape:canary": {"max_error_rate": 5}}, "shipshape:canary.max_error_rate", "less than or equal to 1"),
    ({"shipshape:runtime": "systemd"}, "shipshape:runtime", "'pm2' or 'docker'"),
    ({"shipshape:checks": {"accounts": {"admin": {"password": "env:ADMIN_PW"}}}},
     "shipshape:checks.accounts.admin.username", "missing"),
    ({"shipshape:gcp": {"region": "moon-base"}}, "shipshape:gcp.region", "GCP region"),
    ({"shipshape:gcp": {"min_instances": 5, "max_instances": 2}}, "shipshape:gcp", "exceeds max_instances"),
    ({"shipshape:database": {"tier": "db-huge"}}, "shipshape:database.tier", "db-huge"),
    ({"shipshape:notifications": {"webhook": {"secure": "v1:AAAA"}}}, "shipshape:notifications.webhook",
     "cannot decrypt"),
    ({"shipshape:tls": {"certificate": "/etc/ssl/site.pem"}}, "shipshape:tls.key", "missing"),
    ({"shipshape:tls": {"certificate": "site.pem", "key": "/k.pem"}}, "shipshape:tls.certificate", "'site.pem'"),
    ({"shipshape:target": "cloudrun", "shipshape:tls": {"certificate": "/c.pem", "key": "/k.pem"}},
     "shipshape:tls", "Cloud Run serves HTTPS itself"),
    ({"shipshape:host": {"http_port": 8443}, "shipshape:tls": {"certificate": "/c.pem", "key": "/k.pem",
                                                              "https_port": 8443}},
     "shipshape:tls.https_port = 8443", "also shipshape:host.http_port"),
]


@pytest.mark.parametrize("config, key, words", INVALID, ids=[case[1] for case in INVALID])
def test_invalid_config_names_file_key_and_expectation(config, key, words):
    with pytest.raises(ConfigError) as error:
        parse_stack({"config": config}, "bad", "Pulumi.bad.yaml")
    message = str(error.value)
    assert message.startswith("Pulumi.bad.yaml: ")
    assert key in message
    assert words in message


PLAINTEXT = "https://hooks.slack.com/services/T000/B000/XXXXSECRET"


@pytest.mark.parametrize("config", [
    {"shipshape:notifications": {"webhook": PLAINTEXT}},
    {"shipshape:checks": {"accounts": {"admin": {"username": "a", "password": PLAINTEXT}}}},
])
def test_plaintext_secret_is_refused_without_echoing_it(config):
    with pytest.raises(ConfigError) as error:
        parse_stack({"config": config}, "bad", "Pulumi.bad.yaml")
    assert "plaintext secret" in str(error.value)
    assert PLAINTEXT not in str(error.value)


def test_secret_references_parse():
    stack = parse_stack({"config": {"shipshape:notifications": {"webhook": "env:HOOK"}}}, "s", "Pulumi.s.yaml")
    assert stack.notifications.webhook == SecretRef("env", "HOOK")


def test_stack_file_on_disk_errors_name_the_file(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text("name: x\n")
    (tmp_path / "Pulumi.qa.yaml").write_text(yaml.safe_dump({"config": {"shipshape:app": {"port": -1}}}))
    with pytest.raises(ConfigError, match=r"Pulumi\.qa\.yaml: shipshape:app\.port = -1"):
        load_stack("qa", tmp_path)
    with pytest.raises(ConfigError, match="no such stack file.*known stacks: qa"):
        load_stack("staging", tmp_path)


def test_invalid_yaml_is_a_config_error(tmp_path):
    (tmp_path / "Pulumi.x.yaml").write_text("config: [unclosed\n")
    with pytest.raises(ConfigError, match="Pulumi.x.yaml: not valid YAML"):
        load_stack("x", tmp_path)


def test_config_is_frozen():
    stack = load_stack("local")
    with pytest.raises(Exception):
        stack.app.port = 1


def test_secret_values_are_masked_and_resolved(tmp_path):
    secrets = tmp_path / "s.env"
    secrets.write_text("# comment\nHOOK=https://example.invalid/xyz\n")
    assert read_secrets_file(secrets) == {"HOOK": "https://example.invalid/xyz"}
    value = SecretRef("file", "HOOK").resolve(secrets)
    assert isinstance(value, Sensitive)
    assert str(value) == "***" and "xyz" not in repr(value) and "xyz" not in f"{value}"
    assert value.reveal() == "https://example.invalid/xyz"
    assert SecretRef("env", "X").resolve(environ={"X": "v"}).reveal() == "v"
