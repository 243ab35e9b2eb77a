"""Check accounts are created on a host only when missing or changed: a keyed fingerprint says which.

`fab deploy` runs the app's create_account command once per check account (~0.4-0.8 s each, password
hashing included). The host keeps `state/accounts.fingerprint` (root's, mode 600): an HMAC-SHA256 of
what the last successful run created. Preflight reads it, with the database's identity, in its one
round trip (hoststate's `accounts` section); migrate skips the accounts when the fingerprint it
computes matches, and otherwise creates them and writes the new one in the same round trip.

The HMAC is keyed with the host's own secrets (shared/secrets.env: random values `fab setup` made,
which the same preflight already hands back for masking), so the file alone allows no guessing of a
password; a host without secrets gets no fingerprint (never an unkeyed hash of a password). Its
message is the database's identity, the create_account command text and each (username, role,
password), so a change to any of them creates the accounts again.

The database's identity is its cluster's system identifier and its oid: a database or cluster made
anew (dropped and re-created, a rebuilt host) has another one, so its accounts are created again even
though the file stayed. `fab restore` rewrites the rows in place (same identity): it deletes the
file in its restore round trip, so the next deploy creates the accounts again.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import shlex

from shipshape.layout import Layout
from shipshape.remote import Command, Script
from shipshape.secrets import plain


def fingerprint(host_secrets, database: str | None, command: str, accounts) -> str | None:
    """HMAC-SHA256 (hex) over the database identity, `command` and each (username, role, password),
    keyed with the host's secrets; None when there is no key or no database identity (always create)."""
    key_material = sorted(plain(value) for value in host_secrets)
    if not key_material or not database:
        return None
    key = hashlib.sha256("\0".join(key_material).encode()).digest()
    message = json.dumps({"database": database, "command": command,
                          "accounts": sorted([user, role, plain(password)] for user, role, password in accounts)})
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def write_command(layout: Layout, value: str) -> Command:
    """The fingerprint into state/ (root's, mode 600), temp file + mv."""
    path, tmp = shlex.quote(layout.accounts_fingerprint), shlex.quote(layout.accounts_fingerprint + ".tmp")
    return Script(f"(umask 077; printf '%s\\n' {shlex.quote(value)} > {tmp}) && mv -f {tmp} {path}")


def forget_command(layout: Layout) -> Command:
    """The next deploy creates the accounts again (e.g. after the database was restored)."""
    return ["rm", "-f", layout.accounts_fingerprint]
