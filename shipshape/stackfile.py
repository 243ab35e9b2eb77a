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
    return parse_stack(read_document(path.read_text(), path.name) or {}, stack, path.name)


def read_document(text: str, source: str) -> Any:
    """Parse a stack file's YAML, refusing a key given twice in any mapping; errors name `source`."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except DuplicateKey as error:
        raise ConfigError(f"{source}: {error}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: not valid YAML: {error}") from None


class DuplicateKey(yaml.YAMLError):
    """A mapping key given twice (PyYAML would silently keep the last)."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader whose mappings refuse a key given twice, at any depth, naming its full key path."""

    def construct_document(self, node: yaml.Node) -> Any:
        self._refuse_duplicates(node, "", set())
        return super().construct_document(node)

    def _refuse_duplicates(self, node: yaml.Node, path: str, seen: set[int]) -> None:
        if id(node) in seen:  # an alias: checked where its anchor is (and it may contain itself)
            return
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self._refuse_duplicates(item, f"{path}[{index}]", seen)
        elif isinstance(node, yaml.MappingNode):
            lines: dict[Any, int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # merge keys (<<) may repeat; other complex keys are the constructor's to judge
                key = self.construct_object(key_node)
                key_path = f"{path}.{key}" if path else str(key)
                line = key_node.start_mark.line + 1
                if key in lines:
                    raise DuplicateKey(f"{key_path}: given twice (lines {lines[key]} and {line}); "
                                       "expected each key once")
                lines[key] = line
                self._refuse_duplicates(value_node, key_path, seen)


def parse_stack(document: Any, stack: str, source: str) -> Stack:
    """Validate an already-parsed stack document; `source` names it in errors."""
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: expected a mapping with a `config:` key")
    problems = [f"{source}: {key}: unknown top-level key; expected one of {sorted(FILE_KEYS)}"
                for key in document if key not in FILE_KEYS]
    config = document.get("config") or {}
    if not isinstance(config, dict):
        raise ConfigError(f"{source}: config: expected a mapping of namespaced keys")
    if not any(str(key).startswith(f"{NAMESPACE}:") for key in config):
        problems.append(f"{source}: no {NAMESPACE}: keys; a stack needs at least {NAMESPACE}:target "
                        "(local, vps or cloudrun)")
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
