"""Pure tests of the release pieces: plans, parsers and scripts as data, no host."""
from __future__ import annotations

import shlex
import subprocess
import tarfile
from pathlib import Path

import pytest

from shipshape import provision
from shipshape import release_commands as rc
from shipshape.build import BuildError, build
from shipshape.hoststate import Slots
from shipshape.runtimes import Release, for_stack
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


def test_account_passwords_stay_off_every_command_line():
    stack = load_stack("local")
    layout = provision.Layout("/srv/x")
    release = Release("r1", layout.release("r1"), "abc", "python", "h")
    text = rc.accounts_command(for_stack(stack, layout), release, stack.app.create_account).text
    assert text.index("ACCOUNTS=$(cat)") < text.index("runuser")  # stdin read before anything runs
    assert "export ACCOUNT_USERNAME ACCOUNT_ROLE ACCOUNT_PASSWORD" in text
    # single-quoted for the host's shell: the inner sh -c expands $ACCOUNT_PASSWORD, nothing puts it in argv
    assert "'APP_USER_PASSWORD=\"$ACCOUNT_PASSWORD\" python -m app.cli create-user" in text
    assert "app.cli create-user" in text


def _repo(tmp_path: Path, files: dict[str, str]) -> Path:
    repo = tmp_path / "repo"
    for name, text in files.items():
        (repo / "app" / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / "app" / name).write_text(text)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    return repo / "app"


def _shipped(artifact) -> set[str]:
    with tarfile.open(artifact.path) as tar:
        return {m.name for m in tar.getmembers()}


def test_build_command_runs_in_a_clean_export_and_ships_its_outputs_but_not_node_modules(tmp_path: Path):
    app = _repo(tmp_path, {"package.json": "{}", "package-lock.json": "{}", "src/a.ts": "x"})
    (app / "untracked.txt").write_text("not committed")  # a dirty file the clean export must not see
    subprocess.run(["git", "-C", str(app), "stash", "-u", "-q"], check=True)
    command = "mkdir -p dist node_modules/x && cp src/a.ts dist/a.js && touch node_modules/x/i.js && ls"
    lines = []
    artifact, built = build(app, tmp_path / "out", command=command, log=lines.append)
    assert built and artifact.kind == "node" and artifact.build == command
    assert {"dist/a.js", "src/a.ts", "package.json", "RELEASE"} <= _shipped(artifact)
    assert not any(name.startswith("node_modules") for name in _shipped(artifact))
    assert "dist" in lines  # the build's output is shown as it runs
    assert not build(app, tmp_path / "out", command=command)[1]  # once per sha
    assert build(app, tmp_path / "out", command=command + " -a")[1]  # another build command rebuilds


def test_a_failing_build_command_names_itself_and_shows_its_last_lines(tmp_path: Path):
    app = _repo(tmp_path, {"requirements.txt": "x==1\n"})
    with pytest.raises(BuildError, match=r"(?s)`echo boom; exit 3` exited 3; last lines:\n  boom"):
        build(app, tmp_path / "out", command="echo boom; exit 3", log=lambda line: None)
    assert not list((tmp_path / "out").glob("*.tar.gz"))


def test_an_app_of_no_known_kind_is_refused_at_build(tmp_path: Path):
    app = _repo(tmp_path, {"main.go": "package main"})
    with pytest.raises(BuildError, match="cannot tell the app's kind"):
        build(app, tmp_path / "out")


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


def _sh(*commands) -> subprocess.CompletedProcess:
    """Run commands as the Runner would (one `set -e` chain), here: a host needs no SSH for these."""
    from shipshape.remote import chain

    return subprocess.run(["sh", "-c", chain(commands).text], capture_output=True, text=True)


def _host(tmp_path: Path, releases: list[str], copies: list[str], links: dict[str, str]) -> provision.Layout:
    layout = provision.Layout(str(tmp_path))
    for rid in releases:
        Path(layout.release(rid)).mkdir(parents=True)
    for name in copies:
        Path(layout.static_copy(name)).mkdir(parents=True)
    for slot, rid in links.items():
        Path(layout.static_slot(slot)).symlink_to(rid)
    return layout


@pytest.mark.parametrize("releases, copies, links, doomed, left", [
    # the usual prune: the doomed release's copy goes with it
    (["r1", "r2", "r3"], ["r1", "r2", "r3"], {"a": "r3", "b": "r2"}, ["r1"], ["r2", "r3"]),
    # a slot still links to a doomed release's copy (a failed deploy left it there): the copy stays
    (["r1", "r2", "r3"], ["r1", "r2", "r3"], {"a": "r1", "b": "r3"}, ["r1", "r2"], ["r1", "r3"]),
    # ... until the link moves: the next prune deletes it, and an interrupted copy's temp dir
    (["r3", "r4"], ["r1", "r3", "r4", "r4.tmp"], {"a": "r4", "b": "r3"}, [], ["r3", "r4"]),
    # nothing to prune and no links yet
    (["r1"], ["r1"], {}, [], ["r1"]),
])
def test_prune_deletes_static_copies_with_their_releases_but_never_a_linked_one(tmp_path, releases, copies,
                                                                                links, doomed, left):
    layout = _host(tmp_path, releases, copies, links)
    assert _sh(rc.prune_command(layout, doomed)).returncode == 0
    assert sorted(p.name for p in Path(layout.static).iterdir() if not p.is_symlink()) == left
    assert not any(Path(layout.release(rid)).exists() for rid in doomed)
    assert {slot: Path(layout.static_slot(slot)).readlink().name for slot in links} == links


def test_prune_without_static_files_is_the_release_prune(tmp_path):
    layout = _host(tmp_path, ["r1", "r2"], [], {})
    assert _sh(rc.prune_command(layout, ["r1"])).returncode == 0
    assert [p.name for p in Path(layout.releases).iterdir()] == ["r2"] and not Path(layout.static).exists()


def _release_with_static(tmp_path: Path) -> tuple[provision.Layout, Release, object]:
    layout = provision.Layout(str(tmp_path))
    public = Path(layout.release("r1")) / "web" / "dist"
    (public / "css").mkdir(parents=True)
    (public / "app.3f9a1c2e.js").write_text("js")
    (public / "css" / "site.css").write_text("css")
    (public / "leak").symlink_to("/etc/hostname")  # must not be served
    (public / "css" / "site.css").chmod(0o600)
    (public / "css").chmod(0o700)
    Path(layout.release("r1")).chmod(0o750)
    runtime = for_stack(load_stack("local"), layout)
    return layout, Release("r1", layout.release("r1"), "abc", "node", "h"), runtime


def test_a_static_copy_is_world_readable_without_links_and_lands_whole(tmp_path):
    layout, release, runtime = _release_with_static(tmp_path)
    done = _sh(*rc.static_copy_commands(layout, runtime, release, "web/dist"))
    assert done.returncode == 0, done.stderr
    copy = Path(layout.static_copy("r1"))
    modes = {str(p.relative_to(copy)): oct(p.stat().st_mode & 0o777) for p in [copy, *copy.rglob("*")]}
    assert modes == {".": "0o755", "css": "0o755", "css/site.css": "0o644", "app.3f9a1c2e.js": "0o644"}
    assert oct(Path(layout.static).stat().st_mode & 0o777) == "0o755"
    assert not Path(layout.static_copy("r1") + ".tmp").exists()


def test_a_missing_static_dir_fails_naming_it(tmp_path):
    layout, release, runtime = _release_with_static(tmp_path)
    failed = _sh(*rc.static_copy_commands(layout, runtime, release, "public"))
    assert failed.returncode == 1
    assert "shipshape:app.static.dir = public: no such directory in releases/r1" in failed.stderr
    assert not Path(layout.static_copy("r1")).exists()


def test_a_slot_link_moves_to_the_release_it_starts(tmp_path):
    layout = _host(tmp_path, [], ["r1", "r2"], {})
    for rid in ("r1", "r2", "r2"):
        assert _sh(rc.static_link_command(layout, "b", rid)).returncode == 0
        assert Path(layout.static_slot("b")).readlink() == Path(rid)  # relative: inside static/
    assert sorted(p.name for p in Path(layout.static).iterdir()) == ["r1", "r2", "slot-b"]  # no temp link left


def test_a_docker_stack_is_provisioned_with_the_engine_instead_of_pm2():
    stack = load_stack("local").model_copy(update={"runtime": provision.Runtime.docker})
    script = provision.provision_script(stack)
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)
    assert "dockerd --host" in script and "--iptables=false" in script and "pm2 ping" not in script
    assert "DOCKER_SOCKET=/run/docker.sock" in script


def test_setup_without_systemd_resurrects_the_saved_processes_with_the_runtimes_own_pm2_call():
    stack = load_stack("local")
    script = provision.provision_script(stack)
    pm2 = shlex.join(for_stack(stack, provision.Layout(stack.host.root)).pm2())
    section = script[script.index('elif ! alive "$PM2_HOME/pm2.pid"'):script.index("# An existing nginx.conf")]
    assert f'if [ ! -f "$PM2_HOME/dump.pm2" ]; then\n    {pm2} ping' in section  # nothing saved yet
    assert f"elif {pm2} resurrect >/dev/null 2>&1; then" in section
    assert "resurrect --no-daemon" in script  # systemd hosts: the unit resurrects at boot
