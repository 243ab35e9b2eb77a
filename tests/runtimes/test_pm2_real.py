"""End to end with a real PM2 (its own PM2_HOME, as an unprivileged user): start, replace, status,
graceful stop that drains in-flight requests, SIGKILL after kill_timeout, secrets kept off `ps` and PM2."""
from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import invoke
import pytest
import requests

from shipshape.layout import Layout
from shipshape.remote import Runner
from shipshape.runtimes import Release, Slot
from shipshape.runtimes.pm2 import Pm2

USER = "nobody"  # any unprivileged account: the stack's app user on a real host
SECRET = "s3cr3t-Value with=signs"
HERE = Path(__file__).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def answers(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200
    except requests.RequestException:
        return False


class Host:
    """A temp directory standing in for a host layout, a PM2 runtime over it, and helpers."""

    def __init__(self, root: Path, kill_timeout_ms: int):
        self.root, self.runner = root, Runner(invoke.Context(), secrets=[SECRET])
        self.layout = Layout(str(root))
        venv = Path(self.layout.venvs) / "h" / "bin"
        venv.mkdir(parents=True)
        (venv / "python").symlink_to("/usr/bin/python3")
        for directory in (self.layout.shared, self.layout.logs):
            Path(directory).mkdir(parents=True)
            shutil.chown(directory, USER)
        env_file = Path(self.layout.secrets_env)
        env_file.write_text(f"# generated\nSECRET_KEY={SECRET}\nPORT=1\nDATABASE_URL=from-secrets\n")
        shutil.chown(env_file, USER)
        env_file.chmod(0o600)
        self.pm2 = Pm2(app="t", user=USER, layout=self.layout, start_command="python slot_app.py",
                       kill_timeout_ms=kill_timeout_ms)

    def slot(self, name: str, port: int, release: str, env: str | None = None) -> Slot:
        release_dir = Path(self.layout.release(release))
        release_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(HERE / "slot_app.py", release_dir / "slot_app.py")
        if env is not None:  # the release's own env file, as `prepare` writes it
            path = Path(self.layout.release_env(release))
            path.write_text(env)
            shutil.chown(path, USER)
            path.chmod(0o600)
        return Slot(name, port, Release(release, str(release_dir), f"sha-{release}", "python", "h"))

    def start(self, slot: Slot) -> None:
        self.runner.run_all(self.pm2.start(slot))
        assert wait_for(lambda: answers(slot.port)), f"slot {slot.name} never answered on {slot.port}"

    def status(self):
        return self.pm2.parse_status(self.runner.run(self.pm2.status_command()).stdout)


@pytest.fixture
def host(request):
    if not shutil.which("pm2") or not shutil.which("runuser"):
        pytest.skip("pm2 or runuser missing (scripts/install.sh installs pm2)")
    if os.geteuid() != 0:
        pytest.skip("running PM2 as the app user needs root (runuser)")
    pwd.getpwnam(USER)
    # Not pytest's tmp_path: /tmp/pytest-of-root is 0700 and the app user must reach PM2_HOME.
    root = Path(tempfile.mkdtemp(prefix="shipshape-pm2-"))
    root.chmod(0o755)
    host = Host(root, getattr(request, "param", 5000))
    yield host
    host.runner.run(host.pm2.pm2("kill"), check=False)
    shutil.rmtree(root, ignore_errors=True)


def test_start_runs_the_release_as_the_app_user_with_its_env(host):
    slot = host.slot("a", free_port(), "r1")
    host.start(slot)
    state = host.status()["a"]
    assert (state.name, state.online, state.release) == ("t-a", True, "r1")
    seen = requests.get(f"http://127.0.0.1:{slot.port}/", timeout=5).json()
    assert seen == {"PORT": str(slot.port), "RELEASE_ID": "r1", "GIT_SHA": "sha-r1", "SECRET_KEY": SECRET,
                    "DATABASE_URL": "from-secrets", "cwd": slot.release.dir}
    assert pwd.getpwuid(os.stat(f"/proc/{state.pid}").st_uid).pw_name == USER


def test_the_release_env_file_wins_over_the_generated_secrets(host):
    slot = host.slot("a", free_port(), "r1", env="DATABASE_URL=from-the-stack\n")
    host.start(slot)
    seen = requests.get(f"http://127.0.0.1:{slot.port}/", timeout=5).json()
    assert (seen["DATABASE_URL"], seen["SECRET_KEY"]) == ("from-the-stack", SECRET)


def test_what_a_crashing_start_printed_is_in_its_log_tail(host):
    slot = host.slot("a", free_port(), "r1")
    Path(slot.release.dir, "slot_app.py").write_text("import sys\nprint('cannot open logs/: Permission denied', "
                                                     "file=sys.stderr)\nsys.exit(1)\n")
    host.runner.run_all(host.pm2.start(slot))
    assert wait_for(lambda: "Permission denied" in host.runner.run(host.pm2.log_tail(slot, 30)).stdout)
    assert host.pm2.log_path(slot) == f"{host.layout.logs}/t-a.log"


def test_secrets_are_not_on_the_command_line_nor_in_pm2(host):
    host.start(host.slot("a", free_port(), "r1"))
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert "slot_app.py" in ps and SECRET not in ps
    # Around the Runner, which would mask the secret and hide a leak.
    raw = subprocess.run(host.pm2.pm2("jlist"), capture_output=True, text=True).stdout
    assert "t-a" in raw and SECRET not in raw
    dumped = "".join(p.read_text(errors="replace") for p in Path(host.pm2.home).glob("*.json"))
    assert SECRET not in dumped


def test_start_replaces_the_slot_with_a_new_release(host):
    port = free_port()
    host.start(host.slot("b", port, "r1"))
    first = host.status()["b"]
    host.start(host.slot("b", port, "r2"))
    second = host.status()["b"]
    assert (second.online, second.release) == (True, "r2")
    assert second.pid != first.pid
    assert requests.get(f"http://127.0.0.1:{port}/", timeout=5).json()["RELEASE_ID"] == "r2"
    assert list(host.status()) == ["b"]


def stop_during_request(host: Host, request_seconds: float) -> tuple[list, float, int]:
    """Start slot a, send a request taking `request_seconds`, stop the slot while it is in flight.

    Returns (the request's outcome: [200] or [error name], how long the stop took, the slot's port).
    """
    slot = host.slot("a", free_port(), "r1")
    host.start(slot)
    outcome: list = []

    def call():
        try:
            url = f"http://127.0.0.1:{slot.port}/slow?s={request_seconds}"
            outcome.append(requests.get(url, timeout=30).status_code)
        except requests.RequestException as error:
            outcome.append(type(error).__name__)

    request = threading.Thread(target=call)
    request.start()
    time.sleep(0.3)  # the request is in flight before the stop begins
    started = time.monotonic()
    host.runner.run_all(host.pm2.stop("a"))
    took = time.monotonic() - started
    request.join()
    return outcome, took, slot.port


def test_stop_drains_in_flight_requests(host):
    # 3 s: longer than PM2's default kill_timeout (1.6 s), so only ours (5 s here) lets it finish.
    outcome, took, port = stop_during_request(host, 3)
    assert outcome == [200]
    assert took >= 2.2, "stop returned before the in-flight request finished"
    assert not host.status()["a"].online and not answers(port)


@pytest.mark.parametrize("host", [1000], indirect=True)  # kill_timeout 1 s
def test_stop_kills_after_the_kill_timeout(host):
    outcome, took, _ = stop_during_request(host, 8)
    assert outcome != [200]
    assert 0.8 <= took < 5, took


def test_stop_of_an_absent_slot_is_nothing_to_do(host):
    host.runner.run_all(host.pm2.stop("b"))
    assert host.status() == {}


def test_pm2_restarts_a_crashed_slot(host):
    slot = host.slot("a", free_port(), "r1")
    host.start(slot)
    os.kill(host.status()["a"].pid, 9)
    assert wait_for(lambda: host.status()["a"].restarts == 1 and answers(slot.port))
    assert host.status()["a"].online


def test_the_slot_outlives_the_ssh_session_that_started_it(host):
    from shipshape.remote import connect
    from shipshape.stackfile import find_root, load_stack

    root = find_root()
    subprocess.run([str(root / "scripts" / "local-host.sh")], check=True, capture_output=True, timeout=60)
    slot = host.slot("a", free_port(), "r1")
    connection = connect(load_stack("local").host, root)
    Runner(connection).run_all(host.pm2.start(slot))
    connection.close()
    time.sleep(0.5)  # any SIGHUP from the closed session would have landed by now
    assert wait_for(lambda: answers(slot.port))
    assert host.status()["a"].online
