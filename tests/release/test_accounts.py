"""The check accounts' fingerprint (shipshape/accounts.py): pure, table-driven."""
from __future__ import annotations

import re

import pytest

from shipshape import accounts, backup
from shipshape.layout import Layout
from shipshape.remote import render
from shipshape.secrets import Sensitive
from shipshape.stackfile import parse_stack

HOST = [Sensitive("host-secret-key-0123456789"), Sensitive("host-db-password-abcdef")]
DB = "7310000000000000001/16385"
COMMAND = 'APP_USER_PASSWORD="$ACCOUNT_PASSWORD" app create-user'
ACCOUNTS = [("check-admin", "admin", Sensitive("pw-admin-1")), ("check-viewer", "viewer", Sensitive("pw-viewer-1"))]
BASE = {"host_secrets": HOST, "database": DB, "command": COMMAND, "accounts": ACCOUNTS}
LAYOUT = Layout("/srv/t")


def mark(**changes) -> str | None:
    return accounts.fingerprint(**{**BASE, **changes})


def test_stable_for_the_same_inputs_in_any_order():
    assert mark() == mark() == mark(accounts=ACCOUNTS[::-1], host_secrets=HOST[::-1])
    assert re.fullmatch(r"[0-9a-f]{64}", mark())


@pytest.mark.parametrize("changes", [
    {"accounts": [("check-admin", "admin", Sensitive("pw-admin-2")), ACCOUNTS[1]]},      # a password
    {"accounts": [("check-boss", "admin", Sensitive("pw-admin-1")), ACCOUNTS[1]]},       # a username
    {"accounts": [("check-admin", "member", Sensitive("pw-admin-1")), ACCOUNTS[1]]},     # a role
    {"accounts": ACCOUNTS[:1]},                                                          # one account fewer
    {"command": COMMAND + " --force"},                                                   # the command text
    {"database": "7310000000000000001/16999"},                                           # a new database
    {"database": "7399999999999999999/16385"},                                           # a new cluster
    {"host_secrets": [Sensitive("another-host-secret-key"), HOST[1]]},                   # another host key
], ids=["password", "username", "role", "accounts", "command", "database", "cluster", "host-key"])
def test_any_change_of_an_input_changes_it(changes):
    assert mark(**changes) not in (None, mark())


@pytest.mark.parametrize("changes", [{"host_secrets": []}, {"database": None}, {"database": ""}],
                         ids=["no-host-secrets", "no-database-id", "empty-database-id"])
def test_without_a_key_or_a_database_identity_there_is_none(changes):
    assert mark(**changes) is None  # never an unkeyed hash of a password: the accounts are always created


def test_it_holds_no_password_and_no_unkeyed_hash_of_one():
    import hashlib

    value = mark()
    for _, _, password in ACCOUNTS:
        plain = password.reveal()
        assert plain not in value
        assert hashlib.sha256(plain.encode()).hexdigest() not in value
    command = render(accounts.write_command(LAYOUT, value))
    assert not any(p.reveal() in command for _, _, p in ACCOUNTS)


def test_written_root_only_atomically_and_forgotten_by_a_restore():
    assert render(accounts.write_command(LAYOUT, "ab12")) == (
        "(umask 077; printf '%s\\n' ab12 > /srv/t/state/accounts.fingerprint.tmp) && "
        "mv -f /srv/t/state/accounts.fingerprint.tmp /srv/t/state/accounts.fingerprint")
    stack = parse_stack({"config": {"shipshape:host": {"root": "/srv/t"}}}, "t", "Pulumi.t.yaml")
    _, real = (render(c) for c in backup.restore_commands(stack, LAYOUT, "b1"))
    assert real.startswith("rm -f /srv/t/state/accounts.fingerprint && ") and real.index("rm -f") < real.index("pg_restore")
