"""The runner: commands render to exact shell text; over real sshd it masks secrets and counts round trips."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from shipshape.remote import RemoteError, Runner, Script, chain, connect, render
from shipshape.secrets import Sensitive
from shipshape.stackfile import find_root, load_stack

ROOT = find_root()


@pytest.mark.parametrize("command, text", [
    (["pm2", "reload", "app-a"], "pm2 reload app-a"),
    (["echo", "it's here"], "echo 'it'\"'\"'s here'"),
    (["ls", "/srv/a b"], "ls '/srv/a b'"),
    (Script("cat x | wc -l"), "cat x | wc -l"),
])
def test_render(command, text):
    assert render(command) == text


def test_chain_is_one_script_that_stops_at_first_failure():
    assert chain([["mkdir", "-p", "/x"], Script("echo ok")]).text == "set -e\nmkdir -p /x\necho ok"


@pytest.fixture(scope="module")
def local_runner():
    subprocess.run([str(ROOT / "scripts" / "local-host.sh")], check=True, capture_output=True)
    connection = connect(load_stack("local").host, ROOT)
    yield Runner(connection, secrets=[Sensitive("s3cr3t-value")])
    connection.close()


def test_runner_runs_over_ssh_and_masks_secrets(local_runner):
    result = local_runner.run(["echo", "token=s3cr3t-value"])
    assert result.stdout.strip() == "token=***"
    with pytest.raises(RemoteError) as error:
        local_runner.run(Script("echo s3cr3t-value >&2; exit 7"))
    assert error.value.exit_code == 7
    assert "s3cr3t-value" not in str(error.value) and "***" in str(error.value)


def test_run_all_is_one_round_trip(local_runner, tmp_path):
    before = local_runner.count
    target = tmp_path / "made"
    local_runner.run_all([["mkdir", "-p", str(target)], ["touch", str(target / "f")]])
    assert local_runner.count == before + 1
    assert (target / "f").exists()
    assert not local_runner.run_all([["false"], ["touch", str(target / "g")]], check=False).ok
    assert not (target / "g").exists()


def test_unknown_host_key_is_rejected(tmp_path):
    (tmp_path / ".local" / "ssh").mkdir(parents=True)
    (tmp_path / ".local" / "ssh" / "known_hosts").write_text("")
    host = load_stack("local").host
    connection = connect(host.model_copy(update={"key": str(ROOT / host.key)}), tmp_path)
    with pytest.raises(Exception, match="not found in known_hosts"):
        connection.run("true", hide=True)
