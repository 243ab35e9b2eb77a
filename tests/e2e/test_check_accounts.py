"""Check accounts are created on the host only when missing or changed (shipshape/accounts.py), for real."""
from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

import pytest

from tests.e2e.conftest import ROOT, host_sh

pytestmark = pytest.mark.timeout(600)
FINGERPRINT = f"{ROOT}/state/accounts.fingerprint"


def logs_in(stack, username: str, password: str) -> bool:
    request = urllib.request.Request(stack.site + "/login", json.dumps({"username": username, "password": password}).encode(),
                                     {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status == 200
    except urllib.error.HTTPError:
        return False


def secrets(stack) -> dict:
    lines = (stack.root / ".secrets" / "local.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def set_secret(stack, name: str, value: str) -> None:
    path = stack.root / ".secrets" / "local.env"
    path.write_text("".join(f"{key}={value if key == name else old}\n" for key, old in secrets(stack).items()))


def migrate_seconds(output: str) -> float:
    return float(re.search(r" ok migrate \(.*\) \((\d+\.\d)s\)", output).group(1))


def test_a_second_deploy_skips_the_accounts_until_a_password_changes(local_stack):
    local_stack.commit("e2e: accounts 1")
    first = local_stack.fab("deploy").stderr   # creates them, or finds them unchanged from an earlier run
    assert host_sh(f"stat -c '%a %U' {FINGERPRINT}").strip() == "600 root"
    local_stack.commit("e2e: accounts 2")
    second = local_stack.fab("deploy").stderr
    assert "check accounts: unchanged" in second and "check accounts: check-" not in second
    for role in ("admin", "member", "viewer"):
        assert logs_in(local_stack, f"check-{role}", secrets(local_stack)[f"CHECK_{role.upper()}_PASSWORD"])
    stored = host_sh(f"cat {FINGERPRINT}")
    assert not any(password in stored + first + second for password in secrets(local_stack).values())

    old = secrets(local_stack)["CHECK_VIEWER_PASSWORD"]
    set_secret(local_stack, "CHECK_VIEWER_PASSWORD", old[::-1] + "x")
    local_stack.commit("e2e: accounts 3")
    third = local_stack.fab("deploy").stderr
    assert "check accounts: check-admin, check-member, check-viewer" in third
    assert logs_in(local_stack, "check-viewer", old[::-1] + "x") and not logs_in(local_stack, "check-viewer", old)
    assert host_sh(f"cat {FINGERPRINT}") != stored
    print(f"\nmigrate step: {migrate_seconds(second)}s with the accounts unchanged, "
          f"{migrate_seconds(third)}s creating them")
