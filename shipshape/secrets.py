"""Secrets: references in config, values masked wherever they are printed.

A stack file never holds a secret in plain text. It names where the value lives:

    env:NAME     an environment variable
    file:NAME    a key in the git-ignored secrets file (.secrets/<stack>.env, KEY=value lines)
    gcp:NAME     a Secret Manager secret (Cloud Run stacks; read by the service, not by shipshape)

Values are wrapped in `Sensitive` the moment they are read, so logs, reprs, dry runs and exceptions
print `***` (the idea of Kamal's utils/sensitive.rb and pyinfra's MaskString).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

REF_PATTERN = re.compile(r"^(env|file|gcp):([A-Za-z_][A-Za-z0-9_.\-/]*)$")
MASK = "***"


class SecretError(Exception):
    """A secret reference that cannot be resolved (its value is never part of the message).

    `reason` is the message without the reference, for callers that name the reference themselves.
    """

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = message if reason is None else reason


class Sensitive(str):
    """A str whose repr and str are masked; use `.reveal()` where the real value is needed."""

    def __new__(cls, value: str):
        obj = super().__new__(cls, MASK)
        obj._value = value
        return obj

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Sensitive('***')"

    def __reduce__(self):  # never pickle the value by accident
        raise TypeError("Sensitive values cannot be pickled")


@dataclass(frozen=True)
class SecretRef:
    """Where a secret lives: `kind` is env | file | gcp, `name` the variable, key or secret id."""

    kind: str
    name: str

    @classmethod
    def parse(cls, text: str) -> "SecretRef":
        match = REF_PATTERN.match(text)
        if not match:
            raise ValueError("expected a secret reference env:NAME, file:NAME or gcp:NAME")
        return cls(match.group(1), match.group(2))

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"

    def resolve(self, secrets_file: Path | None = None, environ=None) -> Sensitive:
        environ = os.environ if environ is None else environ
        if self.kind == "env":
            if self.name not in environ:
                raise self._unresolvable(f"environment variable {self.name} is not set")
            return Sensitive(environ[self.name])
        if self.kind == "file":
            values = read_secrets_file(secrets_file) if secrets_file else {}
            if self.name not in values:
                raise self._unresolvable(f"key {self.name} not found in {secrets_file}")
            return Sensitive(values[self.name])
        raise self._unresolvable("Secret Manager values are read by the service, not locally")

    def _unresolvable(self, reason: str) -> SecretError:
        return SecretError(f"secret {self}: {reason}", reason)


def read_secrets_file(path: Path) -> dict[str, str]:
    """Parse KEY=value lines (blank lines and # comments skipped); a missing file is empty."""
    if not path.exists():
        return {}
    values = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise SecretError(f"{path}:{number}: expected KEY=value")
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    return values


def plain(value) -> str:
    """The text of a value that may be Sensitive: for what must carry the real value (an env file, a hash)."""
    return value.reveal() if isinstance(value, Sensitive) else str(value)


def mask(text: str, secrets) -> str:
    """Replace every revealed secret value in `text` by ***."""
    for secret in secrets:
        value = plain(secret)
        if value:
            text = text.replace(value, MASK)
    return text
