"""Read Pulumi.<stack>.yaml into a validated `Stack`, or fail with one message naming file and key.

The file is the one `pulumi config set` writes: a `config:` mapping whose keys are namespaced
(`shipshape:canary`, `gcp:project`). Only `shipshape:` keys are ours; provider namespaces are
passed over, any other namespace is reported as a likely typo.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from shipshape.config import SECTIONS, Stack
from shipshape.secrets import MASK

DEFAULT_STACK = "local"
NAMESPACE = "shipshape"
PROVIDER_NAMESPACES = {"gcp", "docker", "random", "command", "pulumi"}
FILE_KEYS = {"config", "secretsprovider", "encryptionsalt", "encryptedkey"}
SECRET_WORDS = ("webhook", "password", "token", "secret")


class ConfigError(Exception):
    """Invalid stack configuration; the message names the file, the key, the value and what was expected."""


def find_root(start: Path | None = None) -> Path:
    """The project root: $SHIPSHAPE_ROOT, else the nearest directory above `start` holding Pulumi.yaml."""
    if os.environ.get("SHIPSHAPE_ROOT"):
        return Path(os.environ["SHIPSHAPE_ROOT"]).resolve()
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        if (directory / "Pulumi.yaml").exists():
            return directory
    return Path(__file__).resolve().parent.parent


def stack_path(stack: str, root: Path | None = None) -> Path:
    return (root or find_root()) / f"Pulumi.{stack}.yaml"


def secrets_path(stack: str, root: Path | None = None) -> Path:
    """The git-ignored KEY=value file that `file:NAME` secret references read."""
    return (root or find_root()) / ".secrets" / f"{stack}.env"


def load_stack(stack: str = DEFAULT_STACK, root: Path | None = None) -> Stack:
    """Load and validate `Pulumi.<stack>.yaml` from the project root."""
    path = stack_path(stack, root)
    if not path.exists():
        known = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in path.parent.glob("Pulumi.*.yaml"))
        raise ConfigError(f"{path.name}: no such stack file for stack {stack!r}; known stacks: {', '.join(known)}")
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path.name}: not valid YAML: {error}") from None
    return parse_stack(document, stack, path.name)


def parse_stack(document: Any, stack: str, source: str) -> Stack:
    """Validate an already-parsed stack document; `source` names it in errors."""
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: expected a mapping with a `config:` key")
    problems = [f"{source}: {key}: unknown top-level key; expected one of {sorted(FILE_KEYS)}"
                for key in document if key not in FILE_KEYS]
    config = document.get("config") or {}
    if not isinstance(config, dict):
        raise ConfigError(f"{source}: config: expected a mapping of namespaced keys")
    sections: dict[str, Any] = {}
    for key, value in config.items():
        namespace, _, name = str(key).partition(":")
        if namespace == NAMESPACE and name in SECTIONS:
            sections[name] = value
        elif namespace == NAMESPACE:
            problems.append(f"{source}: {key}: unknown key; expected one of "
                            + ", ".join(f"{NAMESPACE}:{s}" for s in SECTIONS))
        elif namespace not in PROVIDER_NAMESPACES or not name:
            problems.append(f"{source}: {key}: unknown namespace {namespace!r}; expected {NAMESPACE}:<key>")
    if problems:
        raise ConfigError("\n".join(problems))
    try:
        return Stack(name=stack, source=source, **sections)
    except ValidationError as error:
        raise ConfigError("\n".join(_describe(source, e) for e in error.errors())) from None


def _describe(source: str, error: dict) -> str:
    location = error["loc"]
    if not location:  # a check across sections (Stack's own validators): its message names the keys
        return f"{source}: {error['msg'].removeprefix('Value error, ')}"
    key = _key_path(location)
    secret = any(word in str(part) for part in location for word in SECRET_WORDS)
    value = MASK if secret else error.get("input")
    expected = error["msg"].removeprefix("Value error, ").replace("Input should be", "expected")
    if error["type"] == "extra_forbidden":
        expected = "unknown key (typo?)"
    elif error["type"] == "missing":
        return f"{source}: {key}: missing; it is required"
    return f"{source}: {key} = {value!r}: {expected}"


def _key_path(location: tuple) -> str:
    text = NAMESPACE + ":"
    for index, part in enumerate(location):
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if index else "") + str(part)
    return text
