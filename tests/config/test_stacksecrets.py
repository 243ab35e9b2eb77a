"""The secrets a deploy resolves: every reference listed by its config key, all failures in one message."""
from __future__ import annotations

import pytest

from shipshape.secrets import SecretError, SecretRef
from shipshape.stackfile import parse_stack
from shipshape.stacksecrets import needed_references, resolve_all

ACCOUNTS = {"accounts": {"admin": {"username": "a", "password": "file:ADMIN_PW"},
                         "viewer": {"username": "v", "password": "env:VIEWER_PW"}}}


def stack(**sections):
    return parse_stack({"config": {f"shipshape:{k}": v for k, v in sections.items()}}, "local", "Pulumi.local.yaml")


NEEDED = [
    # (stack sections, expected [(config key, reference)])
    ({"target": "vps"}, []),
    ({"app": {"secret_env": {"API_KEY": "env:API_KEY", "DB_URL": "file:DB_URL"}}},
     [("shipshape:app.secret_env.API_KEY", "env:API_KEY"), ("shipshape:app.secret_env.DB_URL", "file:DB_URL")]),
    ({"checks": ACCOUNTS}, [("shipshape:checks.accounts.admin.password", "file:ADMIN_PW"),
                            ("shipshape:checks.accounts.viewer.password", "env:VIEWER_PW")]),
    ({"notifications": {"webhook": "env:HOOK"}}, [("shipshape:notifications.webhook", "env:HOOK")]),
    ({"notifications": {"webhook": "gcp:hook"}}, []),  # gcp: is read by the service, never here
    ({"target": "cloudrun", "app": {"secret_env": {"API_KEY": "gcp:api-key"}}, "notifications": {"webhook": "env:H"}},
     [("shipshape:notifications.webhook", "env:H")]),
]


@pytest.mark.parametrize("sections, expected", NEEDED)
def test_needed_references_name_each_by_its_config_key(sections, expected):
    assert [(key, str(ref)) for key, ref in needed_references(stack(**sections))] == expected


@pytest.fixture
def secrets_file(tmp_path):
    path = tmp_path / "local.env"
    path.write_text("ADMIN_PW=admin-pw-value\nDB_URL=postgres://u:db-pw-value@h/d\n")
    return path


def test_resolve_all_gives_every_value_masked(secrets_file):
    values = resolve_all(stack(app={"secret_env": {"API_KEY": "env:API_KEY", "DB_URL": "file:DB_URL"}},
                               checks=ACCOUNTS), secrets_file, environ={"API_KEY": "k-1", "VIEWER_PW": "v-pw"})
    assert {key: value.reveal() for key, value in values.items()} == {
        "shipshape:app.secret_env.API_KEY": "k-1", "shipshape:app.secret_env.DB_URL": "postgres://u:db-pw-value@h/d",
        "shipshape:checks.accounts.admin.password": "admin-pw-value",
        "shipshape:checks.accounts.viewer.password": "v-pw"}
    assert "v-pw" not in repr(values)


def test_resolve_all_lists_every_failure_in_one_error_and_no_value(secrets_file):
    s = stack(app={"secret_env": {"API_KEY": "env:API_KEY", "DB_URL": "file:DB_URL", "TOKEN": "file:TOKEN"}},
              checks=ACCOUNTS, notifications={"webhook": "env:HOOK"})
    with pytest.raises(SecretError) as error:
        resolve_all(s, secrets_file, environ={"VIEWER_PW": "viewer-pw-value"})
    assert str(error.value).splitlines() == [
        "Pulumi.local.yaml: shipshape:app.secret_env.API_KEY = env:API_KEY: environment variable API_KEY is not set",
        f"Pulumi.local.yaml: shipshape:app.secret_env.TOKEN = file:TOKEN: key TOKEN not found in {secrets_file}",
        "Pulumi.local.yaml: shipshape:notifications.webhook = env:HOOK: environment variable HOOK is not set",
    ]
    for value in ("admin-pw-value", "db-pw-value", "viewer-pw-value"):
        assert value not in str(error.value)


@pytest.mark.parametrize("value", ["line1\nline2", "trailing\n", "carriage\rreturn", "\u2028separated"])
def test_a_value_with_a_line_break_is_refused_naming_the_key_only(tmp_path, value):
    s = stack(app={"secret_env": {"API_KEY": "env:API_KEY"}}, notifications={"webhook": "env:HOOK"})
    with pytest.raises(SecretError) as error:
        resolve_all(s, tmp_path / "absent.env", environ={"API_KEY": value, "HOOK": "h\nh"})
    assert str(error.value).splitlines() == [
        f"Pulumi.local.yaml: {key} = env:{name}: the value holds a line break; expected one line "
        "(it goes into a KEY=value env file)"
        for key, name in [("shipshape:app.secret_env.API_KEY", "API_KEY"), ("shipshape:notifications.webhook", "HOOK")]]
    assert not any(part in str(error.value) for part in value.split() + ["h\nh"])


def test_a_malformed_secrets_file_is_reported_with_its_line_not_its_content(tmp_path):
    path = tmp_path / "local.env"
    path.write_text("ADMIN_PW=ok\nsecret-without-equals\n")
    with pytest.raises(SecretError) as error:
        resolve_all(stack(checks=ACCOUNTS), path, environ={"VIEWER_PW": "x"})
    assert str(error.value) == (f"Pulumi.local.yaml: shipshape:checks.accounts.admin.password = file:ADMIN_PW: "
                                f"{path}:2: expected KEY=value")
    assert "secret-without-equals" not in str(error.value)


def test_resolve_keeps_naming_the_reference_for_its_other_callers():
    with pytest.raises(SecretError, match=r"^secret env:X: environment variable X is not set$") as error:
        SecretRef("env", "X").resolve(environ={})
    assert error.value.reason == "environment variable X is not set"
