"""The one place commands reach a host.

Commands are data: lists of arguments built by pure functions elsewhere (`["pm2", "reload", name]`),
or `Script` for the few that need a shell (pipes, redirects, `&&` chains). `Runner` sends them over one
SSH connection, batches several into a single round trip where the caller allows, and masks every
known secret in what it prints, returns and raises.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence, Union

from shipshape.secrets import mask

Argv = Sequence[str]


@dataclass(frozen=True)
class Script:
    """A shell snippet run by `sh -c`; use only where argv cannot express it."""

    text: str


Command = Union[Argv, Script]


def render(command: Command) -> str:
    """The exact shell text a command becomes on the host."""
    if isinstance(command, Script):
        return command.text
    return shlex.join(command)


def chain(commands: Iterable[Command]) -> Script:
    """Several commands as one round trip; stops at the first failure (`set -e`)."""
    return Script("set -e\n" + "\n".join(render(c) for c in commands))


class RemoteError(Exception):
    """A command failed on the host. The message is masked: it never holds a secret value."""

    def __init__(self, command: str, exit_code: int, stderr: str):
        self.command, self.exit_code, self.stderr = command, exit_code, stderr
        tail = stderr.strip().splitlines()[-5:]
        super().__init__(f"exit {exit_code}: {command[:200]}" + ("\n  " + "\n  ".join(tail) if tail else ""))


@dataclass(frozen=True)
class Result:
    stdout: str
    stderr: str
    exit_code: int

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass
class Runner:
    """Runs commands on one host over one connection (anything with Fabric's `run`/`put`)."""

    connection: object
    secrets: list = field(default_factory=list)
    log: Callable[[str], None] | None = None
    count: int = 0

    def add_secret(self, *values) -> None:
        self.secrets.extend(v for v in values if v)

    def run(self, command: Command, *, check: bool = True, stdin: str | None = None) -> Result:
        """Run one command; raise RemoteError (masked) when it fails and `check` is set."""
        text = render(command)
        self.count += 1
        if self.log:
            self.log(self._mask(text))
        kwargs = {"hide": True, "warn": True, "in_stream": False}
        if stdin is not None:
            import io
            kwargs["in_stream"] = io.StringIO(stdin)
        raw = self.connection.run(text, **kwargs)
        result = Result(self._mask(raw.stdout), self._mask(raw.stderr), raw.return_code)
        if check and not result.ok:
            raise RemoteError(self._mask(text), result.exit_code, result.stderr)
        return result

    def run_all(self, commands: Iterable[Command], **kwargs) -> Result:
        """Run commands in one round trip, stopping at the first that fails."""
        return self.run(chain(commands), **kwargs)

    def open(self, command: Command) -> "Stream":
        """Start a long-running command with its stdin open (the deploy lock's holder): lines both ways."""
        text = render(command)
        self.count += 1
        if self.log:
            self.log(self._mask(text))
        client = getattr(self.connection, "client", None)
        if client is not None:  # Fabric's Connection: a second channel on its SSH transport
            self.connection.open()
            channel = client.get_transport().open_session()
            channel.exec_command(text)
            parts = (channel.makefile("rb").readline, channel.sendall, channel.shutdown_write,
                     lambda: not channel.exit_status_ready())
        elif hasattr(self.connection, "open_stream"):  # a test double
            parts = self.connection.open_stream(text)
        else:  # a local invoke.Context: the tests' "host" is this machine
            import subprocess
            proc = subprocess.Popen(["/bin/sh", "-c", text], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL)
            parts = (proc.stdout.readline, lambda data: (proc.stdin.write(data), proc.stdin.flush()),
                     proc.stdin.close, lambda: proc.poll() is None)
        return Stream(*parts, self._mask)

    def put(self, local: Path | str, remote: str) -> None:
        self.count += 1
        if self.log:
            self.log(f"upload {Path(local).name} -> {remote}")
        self.connection.put(str(local), remote)

    def _mask(self, text: str) -> str:
        return mask(text, self.secrets)


@dataclass
class Stream:
    """A command still running on the host: read its output lines, send it lines, end its input."""

    _readline: Callable[[], bytes]
    _send: Callable[[bytes], object]
    _end: Callable[[], object]
    _running: Callable[[], bool]
    _mask: Callable[[str], str]

    def readline(self) -> str:
        """The next output line (masked), '' at the end of its output."""
        return self._mask(self._readline().decode(errors="replace"))

    def send(self, line: str) -> bool:
        """Send one line; False when the command has gone (its input is closed)."""
        try:
            self._send((line + "\n").encode())
            return True
        except (OSError, EOFError, ValueError):
            return False

    def end(self) -> None:
        """Close its input (the command sees EOF)."""
        try:
            self._end()
        except (OSError, EOFError, ValueError):
            pass

    @property
    def running(self) -> bool:
        return self._running()


def connect(host, root: Path, connect_timeout: float = 10.0):
    """A Fabric Connection for a `shipshape.config.Host`, trusting only the known_hosts we keep."""
    from fabric import Connection
    from paramiko import RejectPolicy

    key = (root / host.key) if host.key and not Path(host.key).is_absolute() else host.key
    connection = Connection(
        host.address, user=host.user, port=host.port, connect_timeout=connect_timeout,
        connect_kwargs={"key_filename": str(key)} if key else {})
    known_hosts = root / ".local" / "ssh" / "known_hosts"
    if known_hosts.exists():
        connection.client.load_host_keys(str(known_hosts))
        connection.client.set_missing_host_key_policy(RejectPolicy())
    return connection
