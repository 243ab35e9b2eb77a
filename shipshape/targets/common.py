"""What every release target shares: the failure type the flows raise, pending migrations."""
from __future__ import annotations

import re
import tarfile

from shipshape.build import Artifact

REVISION = re.compile(r"^(down_)?revision\s*(?::[^=]*)?=\s*['\"]?(\w+)?", re.M)


class DeployFailed(Exception):
    """A step failed; `step` names it and the message says why (masked by the Runner)."""

    def __init__(self, step_name: str, reason: str):
        self.step, self.reason = step_name, reason
        super().__init__(f"{step_name}: {reason}")


def pending_migrations(artifact: Artifact, applied: set[str]) -> list[str] | None:
    """Alembic revisions in the artifact that the database lacks, oldest first; None when the app's
    migrations are not Alembic's (another tool: the app's readiness reports a pending schema)."""
    parents = {}
    with tarfile.open(artifact.path) as tar:
        for member in tar.getmembers():
            if member.name.startswith("migrations/versions/") and member.name.endswith(".py"):
                found = {bool(m.group(1)): m.group(2) for m in REVISION.finditer(tar.extractfile(member).read().decode())}
                if found.get(False):
                    parents[found[False]] = None if found.get(True) == "None" else found.get(True)
    if not parents:
        return None
    pending, current = [], next(iter(set(parents) - set(parents.values())), None)
    while current and current not in applied:
        pending.append(current)
        current = parents.get(current)
    return pending[::-1]
