"""Pure tests of the release pieces: plans, parsers and scripts as data, no host."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from shipshape import provision
from shipshape import release_commands as rc
from shipshape.build import BuildError, build
from shipshape.hoststate import Slots
from shipshape.stackfile import load_stack


@pytest.mark.parametrize("existing, keep, protected, doomed", [
    (["r1", "r2", "r3"], 5, set(), []),
    (["r1", "r2", "r3", "r4", "r5", "r6", "r7"], 5, set(), ["r2", "r1"]),
    (["r1", "r2", "r3", "r4", "r5", "r6", "r7"], 5, {"r1"}, ["r2"]),   # the rollback target survives
    (["r1", "r2", "r3"], 2, {"r1", "r3"}, []),
])
def test_prune_plan_keeps_newest_and_protected(existing, keep, protected, doomed):
    assert rc.prune_plan(existing, keep, protected) == doomed


@pytest.mark.parametrize("live, idle", [(None, "a"), ("a", "b"), ("b", "a")])
def test_idle_slot(live, idle):
    assert Slots(live=live).idle == idle


def test_release_id_sorts_by_time_and_says_dirty():
    assert rc.new_release_id("0123456789abcdef", now=0) == "19700101000000-0123456789ab"
    assert rc.new_release_id("0123456789abcdef", dirty=True, now=0).endswith("-dirty")


def test_provision_script_is_valid_bash_and_names_no_secret():
    script = provision.provision_script(load_stack("local"))
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)
    assert "changes: $CHANGES" in script and "PASSWORD=" not in script.split("SECRETS=")[0]


def test_parse_changes():
    assert provision.parse_changes("changed: user x\nchanged: nginx\nchanges: 2\n") == (2, ["user x", "nginx"])
    assert provision.parse_changes("changes: 0\n") == (0, [])


def test_migrate_command_keeps_passwords_off_the_command_line():
    stack = load_stack("local")
    text = rc.migrate_command(provision.Layout("/srv/x"), stack, "r1", "h", True).text
    assert "ACCOUNTS=$(cat)" in text and "APP_USER_PASSWORD=" not in text.replace("read -r U R APP_USER_PASSWORD", "")


def test_build_refuses_dirty_tree_naming_files(tmp_path: Path):
    repo = tmp_path / "repo"
    (repo / "app").mkdir(parents=True)
    (repo / "app" / "requirements.txt").write_text("x==1\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    artifact, built = build(repo / "app", tmp_path / "out")
    assert built and artifact.id == artifact.sha and not build(repo / "app", tmp_path / "out")[1]
    (repo / "app" / "new.py").write_text("")
    with pytest.raises(BuildError, match="new.py"):
        build(repo / "app", tmp_path / "out")
    dirty, _ = build(repo / "app", tmp_path / "out", allow_dirty=True)
    assert "-dirty-" in dirty.id
