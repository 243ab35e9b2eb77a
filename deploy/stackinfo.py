"""`fab config`: show a stack's validated configuration."""
from __future__ import annotations

import json
import sys

from fabric import task

from shipshape.stackfile import ConfigError, load_stack


def load_or_exit(stack: str):
    """Load the stack config, or print the config error and exit 2 before anything on a host changes."""
    try:
        return load_stack(stack)
    except ConfigError as error:
        print(f"config error:\n{error}", file=sys.stderr)
        raise SystemExit(2) from None


@task(help={"stack": "stack name: reads Pulumi.<stack>.yaml (default: local)"})
def config(c, stack="local"):
    """Validate a stack's configuration and print it, defaults filled in (secrets as references).

    Example: fab config --stack prod
    """
    settings = load_or_exit(stack)
    print(json.dumps(settings.model_dump(mode="json"), indent=2, default=str))
