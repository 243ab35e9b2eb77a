"""Host: secrets on disk, disk and memory headroom (facts from one SSH round trip)."""
from __future__ import annotations

ORDER = 5
AREA = "Host"


def test_secrets_file_mode(facts, layout, check):
    """Secrets file is mode 600"""
    check.target(layout.secrets_env)
    info = facts["secrets_file"]
    assert info, f"{layout.secrets_env} is missing"
    assert info["mode"] == "600", f"mode {info['mode']}, expected 600"
    check.detail("mode 600")


def test_secrets_file_owner(facts, layout, stack, check):
    """Secrets file is owned by the app user"""
    check.target(layout.secrets_env)
    info = facts["secrets_file"]
    assert info, f"{layout.secrets_env} is missing"
    assert info["owner"] == stack.host.app_user, f"owned by {info['owner']}, expected {stack.host.app_user}"
    check.detail(f"owner {info['owner']}")


def test_disk_headroom(facts, layout, stack, check):
    """Free disk space above shipshape:checks.disk_free_min_ratio"""
    check.target(f"filesystem of {layout.root}")
    free, floor = facts["disk_free_ratio"], stack.checks.disk_free_min_ratio
    check.detail(f"{free:.0%} free (floor {floor:.0%})")
    assert free >= floor, f"{free:.1%} free, below the {floor:.0%} floor"


def test_memory_headroom(facts, stack, check):
    """Available memory above shipshape:checks.memory_free_min_ratio"""
    check.target("/proc/meminfo MemAvailable")
    free, floor = facts["memory_available_ratio"], stack.checks.memory_free_min_ratio
    check.detail(f"{free:.0%} available (floor {floor:.0%})")
    assert free >= floor, f"{free:.1%} available, below the {floor:.0%} floor"
