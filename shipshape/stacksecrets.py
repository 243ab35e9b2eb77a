"""The secrets a deploy of one stack resolves on this machine, all checked before a host changes.

Each is named by the config key that holds its reference, so one failure message can list every
reference that cannot be resolved (the reference, never a value).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from shipshape.secrets import SecretError, SecretRef, Sensitive

if TYPE_CHECKING:
    from shipshape.config import Stack


def account_key(role: str) -> str:
    return f"shipshape:checks.accounts.{role}.password"


def secret_env_key(name: str) -> str:
    return f"shipshape:app.secret_env.{name}"


def needed_references(stack: Stack) -> list[tuple[str, SecretRef]]:
    """(config key, reference) for every env:/file: reference in the stack; gcp: ones are the service's.

    Example: [("shipshape:app.secret_env.API_KEY", SecretRef("env", "API_KEY")), ...]
    """
    named = [(secret_env_key(name), ref) for name, ref in stack.app.secret_env.items()]
    named += [(account_key(role), account.password) for role, account in stack.checks.accounts.items()]
    if stack.notifications.webhook:
        named.append(("shipshape:notifications.webhook", stack.notifications.webhook))
    return [(key, ref) for key, ref in named if ref.kind != "gcp"]


def resolve_all(stack: Stack, secrets_file: Path, environ=None) -> dict[str, Sensitive]:
    """Resolve every needed reference (config key -> value), or raise one SecretError listing each failure.

    A value must be one line: it goes into a KEY=value env file on the host.
    """
    values: dict[str, Sensitive] = {}
    problems = []
    for key, ref in needed_references(stack):
        try:
            value = ref.resolve(secrets_file, environ)
        except SecretError as error:
            problems.append(f"{stack.source}: {key} = {ref}: {error.reason}")
            continue
        if "".join(value.reveal().splitlines()) != value.reveal():
            problems.append(f"{stack.source}: {key} = {ref}: the value holds a line break; expected one line "
                            "(it goes into a KEY=value env file)")
        values[key] = value
    if problems:
        raise SecretError("\n".join(problems))
    return values
