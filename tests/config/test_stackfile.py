"""Stack files: the shipped ones load; each kind of mistake fails naming file, key and what was expected."""
from __future__ import annotations

import pytest
import yaml

from shipshape.config import Target
from shipshape.secrets import SecretRef, Sensitive, read_secrets_file
from shipshape.stackfile import ConfigError, load_stack, parse_stack, read_document


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
    # a stack must say at least what it deploys to
    ({}, "no shipshape: keys", "a stack needs at least shipshape:target (local, vps or cloudrun)"),
    ({"gcp:project": "my-project"}, "no shipshape: keys", "shipshape:target"),
    # every port a host listens on is its own (slot a = app.port, slot b = app.port + 1)
    ({"shipshape:app": {"port": 8080}, "shipshape:host": {"http_port": 8081}},
     "shipshape:app.port = 8080: slot b (8081)", "collides with shipshape:host.http_port (8081)"),
    ({"shipshape:app": {"port": 8080}, "shipshape:host": {"http_port": 8080}},
     "shipshape:app.port = 8080: slot a (8080)", "collides with shipshape:host.http_port (8080)"),
    ({"shipshape:target": "vps", "shipshape:tls": {"certificate": "/c.pem", "key": "/k.pem", "https_port": 8002}},
     "shipshape:app.port = 8001: slot b (8002)", "collides with shipshape:tls.https_port (8002)"),
    ({"shipshape:database": {"port": 8001}}, "shipshape:app.port = 8001: slot a (8001)",
     "collides with shipshape:database.port (8001)"),
    ({"shipshape:target": "vps", "shipshape:redis": {"port": 5432}}, "shipshape:database.port = 5432",
     "collides with shipshape:redis.port (5432)"),
    ({"shipshape:host": {"http_port": 6379}}, "shipshape:host.http_port = 6379",
     "collides with shipshape:redis.port (6379)"),
    ({"shipshape:tls": {"certificate": "/c.pem", "key": "/k.pem", "https_port": 5432}},
     "shipshape:tls.https_port = 5432", "collides with shipshape:database.port (5432)"),
    ({"shipshape:app": {"port": 65535}}, "shipshape:app.port = 65535", "slot b would listen on 65536"),
    # secret_env references must be ones the target can read
    ({"shipshape:app": {"secret_env": {"API_KEY": "gcp:api-key"}}},
     "shipshape:app.secret_env.API_KEY = gcp:api-key", "only Cloud Run reads Secret Manager"),
    ({"shipshape:target": "vps", "shipshape:app": {"secret_env": {"API_KEY": "gcp:api-key"}}},
     "shipshape:app.secret_env.API_KEY = gcp:api-key", "shipshape:target is vps; expected env:NAME or file:NAME"),
    ({"shipshape:target": "cloudrun", "shipshape:app": {"secret_env": {"API_KEY": "env:API_KEY"}}},
     "shipshape:app.secret_env.API_KEY = env:API_KEY", "Cloud Run reads secrets from Secret Manager"),
    ({"shipshape:target": "cloudrun", "shipshape:app": {"secret_env": {"DB_URL": "file:DB_URL"}}},
     "shipshape:app.secret_env.DB_URL = file:DB_URL", "expected gcp:SECRET_ID"),
    # static files nginx serves: a prefix of their own, on a host
    ({"shipshape:app": {"static": {"dir": "public", "url": "/api/"}}},
     "shipshape:app.static.url = /api/", "would take /api/notes away from the app"),
    ({"shipshape:app": {"static": {"dir": "public", "url": "/healthz/"}}},
     "shipshape:app.static.url = /healthz/", "would take /healthz away"),
    ({"shipshape:target": "cloudrun", "shipshape:app": {"static": {"dir": "public"}}},
     "shipshape:app.static.url = /static/", "shipshape:target is cloudrun"),
    ({"shipshape:app": {"static": {"dir": "web/../..", "url": "/assets/"}}}, "shipshape:app.static.dir", "inside the release"),
    ({"shipshape:runtime": "docker", "shipshape:docker": {"socket": "docker.sock"}},
     "shipshape:docker.socket", "String should match pattern"),
    ({"shipshape:docker": {"stop_timeout": 0}}, "shipshape:docker.stop_timeout", "greater than or equal to 1"),
]

VALID = [
    # (config mapping, what it shows): nothing here may be refused
    ({"shipshape:target": "vps"}, "defaults: 8001/8002, 80, 5432, 6379"),
    ({"shipshape:app": {"port": 8101}, "shipshape:host": {"http_port": 8180}, "shipshape:database": {"port": 5434},
      "shipshape:redis": {"port": 6381}}, "the e2e stack's ports"),
    ({"shipshape:app": {"port": 65534}}, "slot b on the last port"),
    ({"shipshape:app": {"port": 8000}, "shipshape:host": {"http_port": 8002}}, "http just above slot b"),
    ({"shipshape:tls": {"certificate": "/c.pem", "key": "/k.pem"}}, "tls on 443 beside http on 80"),
    ({"shipshape:target": "cloudrun", "shipshape:app": {"port": 5432}}, "Cloud Run: ports are not a host's"),
    ({"shipshape:target": "cloudrun", "shipshape:app": {"secret_env": {"API_KEY": "gcp:api-key"}}},
     "Cloud Run reads gcp:"),
    ({"shipshape:target": "vps", "shipshape:app": {"secret_env": {"A": "env:A", "B": "file:B"}}},
     "a host reads env: and file:"),
    ({"shipshape:host": {"port": 2222}}, "any shipshape: key makes a stack (target defaults to local)"),
    ({"shipshape:app": {"static": {"dir": "web/dist", "url": "/assets/"}}}, "static under its own prefix"),
    ({"shipshape:runtime": "docker", "shipshape:docker": {"socket": "/run/shipshape/docker.sock"}},
     "docker on its own socket"),
]


@pytest.mark.parametrize("config, shows", VALID, ids=[case[1] for case in VALID])
def test_valid_config_is_accepted(config, shows):
    parse_stack({"config": config}, "good", "Pulumi.good.yaml")


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
    {"shipshape:app": {"secret_env": {"API_KEY": PLAINTEXT}}},
])
def test_plaintext_secret_is_refused_without_echoing_it(config):
    with pytest.raises(ConfigError) as error:
        parse_stack({"config": config}, "bad", "Pulumi.bad.yaml")
    assert "plaintext secret" in str(error.value)
    assert PLAINTEXT not in str(error.value)


def test_plaintext_secret_env_names_its_variable():
    config = {"shipshape:app": {"secret_env": {"DB_URL": "env:DB_URL", "API_KEY": PLAINTEXT}}}
    with pytest.raises(ConfigError) as error:
        parse_stack({"config": config}, "bad", "Pulumi.bad.yaml")
    assert str(error.value) == ("Pulumi.bad.yaml: shipshape:app.secret_env.API_KEY = '***': looks like a plaintext "
                                "secret; expected a reference env:NAME, file:NAME or gcp:NAME")


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


DUPLICATES = [
    # (stack file text, the whole message): PyYAML alone would keep the last value silently
    ("config:\n  shipshape:app: {port: 8001}\n  gcp:project: p\n  shipshape:app: {port: 9001}\n",
     "config.shipshape:app: given twice (lines 2 and 4); expected each key once"),
    ("config:\n  shipshape:target: vps\n  shipshape:app:\n    port: 8001\n    name: web\n    port: 9001\n",
     "config.shipshape:app.port: given twice (lines 4 and 6); expected each key once"),
    ("config:\n  shipshape:target: vps\nconfig:\n  shipshape:target: local\n",
     "config: given twice (lines 1 and 3); expected each key once"),
    ("config:\n  shipshape:checks:\n    accounts:\n      admin: {username: a, password: 'env:A', username: b}\n",
     "config.shipshape:checks.accounts.admin.username: given twice (lines 4 and 4); expected each key once"),
    ("config:\n  shipshape:gcp:\n    ssh_allow:\n      - {cidr: 10.0.0.0/8, cidr: 0.0.0.0/0}\n",
     "config.shipshape:gcp.ssh_allow[0].cidr: given twice (lines 4 and 4); expected each key once"),
]


@pytest.mark.parametrize("text, message", DUPLICATES, ids=[case[1].split(": given")[0] for case in DUPLICATES])
def test_a_key_given_twice_is_refused_naming_its_path_and_lines(tmp_path, text, message):
    (tmp_path / "Pulumi.bad.yaml").write_text(text)
    with pytest.raises(ConfigError) as error:
        load_stack("bad", tmp_path)
    assert str(error.value) == f"Pulumi.bad.yaml: {message}"


@pytest.mark.parametrize("text", [
    "config:\n  shipshape:app: {port: 9001}\n  shipshape:host: {port: 2222}\n",   # same key, other mappings
    "base: &base {port: 9001}\nconfig:\n  shipshape:app: {<<: *base, name: web}\n",  # merge keys
])
def test_the_same_key_in_different_mappings_is_fine(tmp_path, text):
    assert read_document(text, "Pulumi.ok.yaml")["config"]["shipshape:app"]["port"] == 9001


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "config:\n", "config:\n  gcp:project: my-project\n"])
def test_a_stack_file_without_shipshape_keys_is_refused(tmp_path, text):
    (tmp_path / "Pulumi.x.yaml").write_text(text)
    with pytest.raises(ConfigError) as error:
        load_stack("x", tmp_path)
    assert str(error.value) == ("Pulumi.x.yaml: no shipshape: keys; a stack needs at least shipshape:target "
                                "(local, vps or cloudrun)")


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
