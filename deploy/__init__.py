"""Fabric tasks that ship releases. Every task takes `--stack` (default: local)."""
from invoke import Collection

from deploy import release, setup, stackinfo
from deploy import backups, canary, history

ns = Collection()
ns.add_task(stackinfo.config)
ns.add_task(setup.setup)
for _task in (release.build, release.deploy, release.rollback, release.migrate, release.restart, release.status):
    ns.add_task(_task)
ns.add_task(canary.canary)
ns.add_task(backups.backup)
ns.add_task(backups.restore)
ns.add_task(backups.backups)
ns.add_task(history.releases)
ns.add_task(history.lock)
ns.add_task(history.unlock)
