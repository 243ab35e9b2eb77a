"""The stack's configuration as the Pulumi CLI hands it to the program.

Under `pulumi up` the CLI passes every config value (including ones set with `pulumi config set`, and
decrypted secrets) in PULUMI_CONFIG; this reads the `shipshape:` keys from there and validates them with
the same model and messages as `shipshape.stackfile.load_stack`, before any resource is declared.
"""
from __future__ import annotations

import json
from typing import Any

from pulumi.runtime import config as pulumi_config

from shipshape.stackfile import NAMESPACE, ConfigError, parse_stack  # noqa: F401 (ConfigError re-exported)
from shipshape.config import Stack


def _value(raw: Any) -> Any:
    """Object and array config values arrive JSON-encoded; plain strings arrive as they are."""
    if not isinstance(raw, str):
        return raw
    try:
        decoded = json.loads(raw)
    except ValueError:
        return raw
    return decoded if isinstance(decoded, (dict, list)) else raw


def current_config() -> dict[str, Any]:
    """All config keys the engine gave this program (namespace:key -> value)."""
    merged = {**pulumi_config.get_config_env(), **pulumi_config.CONFIG.get()}
    return {key: _value(value) for key, value in merged.items()}


def stack_from_pulumi_config(stack: str) -> Stack:
    """Validate the running stack's config; raises ConfigError naming the stack file and key."""
    keys = {k: v for k, v in current_config().items() if k.startswith(f"{NAMESPACE}:")}
    return parse_stack({"config": keys}, stack, f"Pulumi.{stack}.yaml (pulumi config)")
