"""`fab setup`'s docker section on this machine (no systemd): it starts dockerd by hand on the stack's
socket, Unix socket only, and a second run changes nothing. The engine is stopped afterwards."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from shipshape import provision
from shipshape.layout import Layout
from shipshape.stackfile import load_stack

pytestmark = [pytest.mark.slow, pytest.mark.docker]


@pytest.mark.skipif(shutil.which("dockerd") is None, reason="not installed: dockerd (apt-get install docker.io)")
def test_setup_starts_dockerd_on_the_stack_socket_once(tmp_path):
    root = tmp_path / "srv_dockersetup"
    (root / "logs").mkdir(parents=True)
    socket = f"/run/shipshape-test/setup-{os.getpid()}.sock"
    stack = load_stack("local").model_copy(update={
        "runtime": provision.Runtime.docker,
        "docker": provision.Stack.model_fields["docker"].annotation(socket=socket, data_root=str(tmp_path / "data"))})
    layout = Layout(str(root))
    script = "\n".join([provision.PRELUDE, provision.variables(stack, layout), provision.DOCKER,
                        'echo "changes: $CHANGES"'])
    pidfile = Path("/run/shipshape-docker/srv_dockersetup.pid")
    try:
        first = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=90)
        assert first.returncode == 0, first.stdout + first.stderr
        assert provision.parse_changes(first.stdout) == (1, [f"started dockerd on unix://{socket}"])
        assert subprocess.run(["docker", "-H", f"unix://{socket}", "info"], capture_output=True).returncode == 0
        second = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
        assert provision.parse_changes(second.stdout) == (0, [])
        listening = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
        assert "dockerd" not in listening  # no TCP port: the Unix socket only
    finally:
        if pidfile.exists():
            pid = int(pidfile.read_text())
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                if not Path(f"/proc/{pid}").exists():
                    break
                time.sleep(0.1)
