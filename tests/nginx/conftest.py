"""Real nginx in front of two real HTTP upstreams on loopback, for the end-to-end nginx tests.

    nginx_site   NginxSite: .stack, .layout, .runner, .apply(weights), .get(path), .upstreams["a"/"b"]

Each upstream answers 200 with its slot name; slot b answers 500 under /fail-on-b and takes 80 ms
under /slow-on-b.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import invoke
import pytest
import requests

from shipshape import nginx
from shipshape.config import Stack
from shipshape.layout import Layout
from shipshape.remote import Runner


class Upstream:
    """One slot's stand-in app: counts what it served."""

    def __init__(self, name: str, port: int):
        self.name, self.port, self.served = name, port, 0
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # so nginx's upstream keepalive is exercised
            disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms ACK wait

            def do_GET(self):
                upstream.served += 1
                if upstream.name == "b" and self.path.startswith("/slow-on-b"):
                    time.sleep(0.08)
                status = 500 if (upstream.name == "b" and self.path.startswith("/fail-on-b")) else 200
                body = upstream.name.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                if self.path.startswith("/own-headers"):  # an app that sets security headers itself
                    self.send_header("X-Frame-Options", "SAMEORIGIN")
                    self.send_header("Content-Security-Policy", "default-src *")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port_pair() -> int:
    """A port P with P and P + 1 free on loopback (slot a and slot b)."""
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port < 65535 and _bindable(port) and _bindable(port + 1):
            return port
    raise RuntimeError("no two consecutive free loopback ports")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class NginxSite:
    stack: Stack
    layout: Layout
    runner: Runner
    upstreams: dict = field(default_factory=dict)

    def apply(self, weights: dict[str, int]) -> None:
        self.runner.run_all(nginx.apply_commands(self.layout, nginx.site_config(self.stack, self.layout, weights)))

    def get(self, path: str = "/") -> requests.Response:
        # A new connection per request: a reload must not drop fresh connections either.
        return requests.get(f"http://127.0.0.1:{self.stack.host.http_port}{path}", timeout=5,
                            headers={"Connection": "close"})

    def stats(self, since: float) -> dict[str, nginx.TrafficStats]:
        """Each slot's traffic since `since`, read as the canary gate reads it."""
        return {slot: nginx.parse_traffic_stats(self.runner.run(
            nginx.traffic_stats_command(self.layout, port, since)).stdout)
            for slot, port in nginx.slot_ports(self.stack).items()}

    def served_by(self, count: int, path: str = "/") -> dict[str, int]:
        seen = {"a": 0, "b": 0}
        for _ in range(count):
            response = self.get(path)
            assert response.status_code == 200, response.text
            seen[response.text] += 1
        return seen


@pytest.fixture
def nginx_site(tmp_path):
    if not shutil.which("nginx"):
        pytest.skip("nginx is not installed (scripts/install.sh installs it)")
    port = free_port_pair()
    stack = Stack.model_validate({"name": "test", "source": "Pulumi.test.yaml", "app": {"port": port},
                                  "host": {"http_port": free_port(), "root": str(tmp_path)}})
    site = NginxSite(stack, Layout(str(tmp_path)), Runner(invoke.Context()),
                     {slot: Upstream(slot, p) for slot, p in nginx.slot_ports(stack).items()})
    yield site
    pid = tmp_path / "nginx" / "nginx.pid"
    if pid.exists():
        subprocess.run(["nginx", "-s", "stop", "-c", site.layout.nginx_conf, "-p", f"{site.layout.nginx}/",
                        "-e", f"{site.layout.nginx}/error.log"], capture_output=True, timeout=10)
        deadline = time.monotonic() + 5
        while pid.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    for upstream in site.upstreams.values():
        upstream.close()
