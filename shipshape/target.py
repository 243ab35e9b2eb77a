"""What every release task acts on: the stack, its host layout, one Runner and the slot runtime.

Also the pieces deploy, rollback and restart share: reading host state, building a slot for a
release, starting it (readiness-gated, one round trip), moving nginx weights and recording the outcome.
"""
from __future__ import annotations

import getpass
import socket
import time
from dataclasses import dataclass, field, replace

from shipshape import history, nginx, notify
from shipshape import release_commands as rc
from shipshape.hoststate import HostState, Slots, parse_state, state_command, venv_dir, write_slots_command
from shipshape.layout import SLOTS, Layout
from shipshape.remote import Runner
from shipshape.runtimes import Slot


class DeployFailed(Exception):
    """A step failed; `step` names it and the message says why (masked by the Runner)."""

    def __init__(self, step_name: str, reason: str):
        self.step, self.reason = step_name, reason
        super().__init__(f"{step_name}: {reason}")


def other(slot: str) -> str:
    return SLOTS[1 - SLOTS.index(slot)]


def who() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


@dataclass
class Target:
    stack: object
    layout: Layout
    runner: Runner
    runtime: object
    accounts: list = field(default_factory=list)  # (username, role, Sensitive password) to create

    def port(self, slot: str) -> int:
        return nginx.slot_ports(self.stack)[slot]

    def read_state(self, artifact=None) -> HostState:
        command = state_command(self.stack, self.layout, self.runtime, artifact and artifact.id,
                                artifact and artifact.requirements_hash)
        state = parse_state(self.runner.run(command).stdout, self.stack, self.runtime)
        self.runner.add_secret(*state.secrets)
        return state

    def slot(self, name: str, release_id: str, manifest: dict) -> Slot:
        return Slot(name, self.port(name), release_id, self.layout.release(release_id),
                    venv_dir(self.layout, manifest["requirements_hash"]), manifest["sha"])

    def weights(self, weights: dict) -> list:
        """Commands that write, test and gracefully load nginx weights."""
        return nginx.apply_commands(self.layout, nginx.site_config(self.stack, self.layout, weights))

    def start(self, slot: Slot, manifest: dict) -> list:
        """Start `slot` then wait for readiness on the host, to canary.readiness_timeout: one round trip."""
        runtime = self.runtime
        if manifest.get("env_override") and hasattr(runtime, "env_file"):
            runtime = replace(runtime, env_file=f"{slot.release_dir}/{rc.RELEASE_ENV}")
        return [*runtime.start(slot),
                rc.readiness_command(slot.port, self.stack.app.readiness_path, self.stack.canary.readiness_timeout)]

    def stop(self, slot: str) -> list:
        return list(self.runtime.stop(slot))

    def slot_entry(self, slot: Slot) -> dict:
        return {"release": slot.release_id, "git_sha": slot.git_sha, "port": slot.port, "started": time.time()}

    def promote(self, slots: Slots, entry: history.Entry, extra: list = ()) -> None:
        """slots.json (atomic) + history line (+ extra commands, e.g. pruning): one round trip."""
        self.runner.run_all([write_slots_command(self.layout, slots),
                             history.record_command(self.layout, entry, self.runner.secrets), *extra])

    def record(self, entry: history.Entry, event: str) -> None:
        self.runner.run(history.record_command(self.layout, entry, self.runner.secrets), check=False)
        self.notify(event, entry)

    def notify(self, event: str, entry: history.Entry) -> None:
        notify.notify(self.stack, event, release=entry.release, git_sha=entry.git_sha, who=entry.who,
                      step=entry.step, reason=entry.reason)
