"""Fabric tasks that ship releases. Every task takes `--stack` (default: local)."""
from invoke import Collection

from deploy import setup, stackinfo

ns = Collection()
ns.add_task(stackinfo.config)
ns.add_task(setup.setup)
