"""A fake of Cloud Run's front end, for tests only: loopback listeners that split requests
between revisions as the service's traffic list says, and count what each revision answered.

One listener per service URL, and one per tag URL (`https://TAG---SERVICE-HASH.run.app` on
Cloud Run; here `http://127.0.0.1:PORT`, a stable port while the tag exists). Each request is
proxied to the chosen revision's container ("127.0.0.1:PORT") and recorded in Counts — with
its status and latency — so HTTP checks and the canary gate see real requests and real errors.

Rules it follows:
- Split by percent with nginx's smooth weighted round-robin: deterministic, and exact over
  every cycle (10 %/90 % → 1 in each 10 requests, so 4 of 40 reach the canary).
- A revision with no running container, or one that refuses or drops the connection, answers
  503 (Cloud Run's front end returns 503 "upstream connect error or disconnect/reset before
  headers" when it cannot reach an instance); that 503 counts as the revision's 5xx. A backend
  that does not answer in 300 s (Cloud Run's default request timeout) answers 504.
- An empty or all-zero split answers 503 and counts nothing: no revision was reached, and
  request_count is per revision.
- A service whose invoker policy lacks allUsers (`set_access` with a check) answers 403 with
  Cloud Run's "Your client does not have permission" page to a request whose Authorization
  header the check refuses; such a request reaches no revision and counts nothing (a fake's
  simplification: Google logs it, with no revision to attribute it to).
- Proxying passes method, path+query, headers and body; drops hop-by-hop headers; adds
  X-Forwarded-For and X-Forwarded-Proto (http: these URLs are plain loopback). Responses are
  buffered and re-sent with Content-Length on a keep-alive HTTP/1.1 connection, so streaming
  responses arrive whole (a fake's simplification). Each proxied request opens a fresh
  connection to its backend (`Connection: close`): no stale pooled connections to retry, and
  no Nagle/delayed-ACK stalls with backends that write headers and body separately.
- A request is recorded before its response is written, so a client that got its answer can
  read the count at once. Latency is from request headers read to backend response read.

Example:

    router = Router(Counts())
    url = router.add_service("shop")                     # http://127.0.0.1:PORT
    router.set_traffic("shop", [("shop-1", 90, "127.0.0.1:8001"), ("shop-2", 10, None)])
    router.set_tags("shop", {"canary": ("shop-2", "127.0.0.1:8002")})  # {"canary": URL}
    router.close()
"""
from __future__ import annotations

import http.client
import math
import socket
import sys
import threading
import time
from functools import reduce
from typing import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.fake_gcp.counts import Counts

BACKEND_TIMEOUT = 300.0
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailer", "trailers", "transfer-encoding", "upgrade", "proxy-connection"}
NO_BODY = {204, 304}
FORBIDDEN = b"Error: Forbidden\nYour client does not have permission to get URL from this server.\n"
UNREACHABLE = b"upstream connect error or disconnect/reset before headers. " \
              b"reset reason: connection failure"

Target = tuple[str, "str | None"]          # (revision, backend "127.0.0.1:port" or None)
Reply = tuple[int, str, list[tuple[str, str]], bytes]          # status, reason, headers, body


class _Split:
    """Smooth weighted round-robin over the revisions with a non-zero percent."""

    def __init__(self, split: list[tuple[str, int, str | None]]) -> None:
        live = [(rev, int(pct), backend) for rev, pct, backend in split if pct > 0]
        step = reduce(math.gcd, [pct for _, pct, _ in live], 0) or 1
        self.shape = [(rev, pct) for rev, pct, _ in live]
        self.weights = [pct // step for _, pct, _ in live]
        self.targets: list[Target] = [(rev, backend) for rev, _, backend in live]
        self.current = [0] * len(live)

    def pick(self) -> Target | None:
        if not self.targets:
            return None
        for i, weight in enumerate(self.weights):
            self.current[i] += weight
        best = max(range(len(self.current)), key=self.current.__getitem__)
        self.current[best] -= sum(self.weights)
        return self.targets[best]


class _Listener(ThreadingHTTPServer):
    """One loopback URL; `tag` None for the service URL."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, router: "Router", service: str, tag: str | None, port: int) -> None:
        self.router, self.service, self.tag = router, service, tag
        self.clients: set[socket.socket] = set()
        self.clients_lock = threading.Lock()
        super().__init__((router.host, port), _ProxyHandler)
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                       name=f"fake-run-{service}-{tag or 'main'}", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.server_address[0]}:{self.server_address[1]}"

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):   # clients hanging up is normal
            super().handle_error(request, client_address)

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        with self.clients_lock:
            for sock in list(self.clients):      # idle keep-alive connections too
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class Router:
    """Loopback front end for fake Cloud Run services: traffic split, tag URLs, counting."""

    def __init__(self, counts: Counts, host: str = "127.0.0.1") -> None:
        self.counts, self.host = counts, host
        self._lock = threading.Lock()
        self._services: dict[str, _Listener] = {}
        self._splits: dict[str, _Split] = {}
        self._tags: dict[str, dict[str, Target]] = {}
        self._tag_listeners: dict[str, dict[str, _Listener]] = {}
        self._access: dict[str, Callable[[str], bool]] = {}

    def add_service(self, service: str, port: int = 0) -> str:
        """Start the service URL's listener (idempotent); returns "http://127.0.0.1:PORT"."""
        with self._lock:
            if service not in self._services:
                self._services[service] = _Listener(self, service, None, port)
                self._splits[service] = _Split([])
                self._tags[service], self._tag_listeners[service] = {}, {}
            listener = self._services[service]
        if port and listener.server_address[1] != port:
            raise ValueError(f"service {service!r} already listens on {listener.url}, not :{port}")
        return listener.url

    def set_traffic(self, service: str, split: list[tuple[str, int, str | None]]) -> None:
        """Route the service URL: [(revision, percent, backend or None)]; [] answers 503."""
        fresh = _Split(split)
        with self._lock:
            self._known(service)
            old = self._splits[service]
            if old.shape == fresh.shape:          # same split, maybe new backends: keep the cycle
                fresh.current = old.current
            self._splits[service] = fresh

    def set_tags(self, service: str, tags: dict[str, tuple[str, str | None]]) -> dict[str, str]:
        """Tag URLs: {tag: (revision, backend or None)} -> {tag: URL}; dropped tags close."""
        with self._lock:
            self._known(service)
            listeners = self._tag_listeners[service]
            gone = [listeners.pop(tag) for tag in list(listeners) if tag not in tags]
            for tag in tags:
                if tag not in listeners:
                    listeners[tag] = _Listener(self, service, tag, 0)
            self._tags[service] = {tag: (rev, backend) for tag, (rev, backend) in tags.items()}
            urls = {tag: listener.url for tag, listener in listeners.items()}
        for listener in gone:
            listener.stop()
        return urls

    def set_access(self, service: str, allowed: Callable[[str], bool] | None) -> None:
        """Who may invoke the service (its URL and tag URLs): None, anyone (allUsers); else the requests
        whose Authorization header `allowed` accepts."""
        with self._lock:
            self._known(service)
            if allowed is None:
                self._access.pop(service, None)
            else:
                self._access[service] = allowed

    def close(self) -> None:
        """Stop every listener."""
        with self._lock:
            listeners = list(self._services.values())
            listeners += [lst for tags in self._tag_listeners.values() for lst in tags.values()]
            self._services.clear()
            self._tag_listeners.clear()
        for listener in listeners:
            listener.stop()

    def _known(self, service: str) -> None:
        if service not in self._services:
            raise KeyError(f"unknown service {service!r}: call add_service first")

    def _permits(self, service: str, authorization: str) -> bool:
        with self._lock:
            allowed = self._access.get(service)
        return allowed is None or allowed(authorization)

    def _target(self, service: str, tag: str | None) -> Target | None:
        with self._lock:
            if tag is None:
                split = self._splits.get(service)
                return split.pick() if split else None
            return self._tags.get(service, {}).get(tag)


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 120                              # idle keep-alive connections
    server: _Listener

    def setup(self) -> None:
        super().setup()
        with self.server.clients_lock:
            self.server.clients.add(self.connection)

    def finish(self) -> None:
        with self.server.clients_lock:
            self.server.clients.discard(self.connection)
        super().finish()

    def __getattr__(self, name: str):
        if name.startswith("do_"):            # every method is proxied
            return self._proxy
        raise AttributeError(name)

    def log_message(self, format: str, *args) -> None:
        pass

    def _proxy(self) -> None:
        started = time.monotonic()
        body = self._read_body()
        if not self.server.router._permits(self.server.service, self.headers.get("Authorization", "")):
            self._reply(403, "Forbidden", [], FORBIDDEN)
            return
        target = self.server.router._target(self.server.service, self.server.tag)
        if target is None:
            self._reply(503, "Service Unavailable", [], b"no revision receives traffic\n")
            return
        revision, backend = target
        status, reason, headers, payload = _forward(backend, self.command, self.path,
                                                    self._upstream_headers(body), body)
        self.server.router.counts.record(self.server.service, revision, status,
                                         (time.monotonic() - started) * 1000.0)
        self._reply(status, reason, headers, payload)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return _read_chunked(self.rfile)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _upstream_headers(self, body: bytes) -> list[tuple[str, str]]:
        named = {h.strip().lower() for h in self.headers.get("Connection", "").split(",")}
        drop = HOP_BY_HOP | named | {"content-length", "expect", "x-forwarded-for",
                                     "x-forwarded-proto"}
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in drop]
        forwarded = ", ".join(self.headers.get_all("X-Forwarded-For", []) + [self.client_address[0]])
        headers += [("X-Forwarded-For", forwarded), ("X-Forwarded-Proto", "http"),
                    ("Connection", "close")]
        if body or "Content-Length" in self.headers or "Transfer-Encoding" in self.headers:
            headers.append(("Content-Length", str(len(body))))
        return headers

    def _reply(self, status: int, reason: str, headers: list[tuple[str, str]],
               payload: bytes) -> None:
        self.send_response_only(status, reason)
        sent_length = None
        for key, value in headers:
            if key.lower() in HOP_BY_HOP:
                continue
            if key.lower() == "content-length":
                sent_length = value
                continue
            self.send_header(key, value)
        if not headers:
            self.send_header("Content-Type", "text/plain; charset=utf-8")
        if status not in NO_BODY and status >= 200:
            head = self.command == "HEAD" and sent_length is not None
            self.send_header("Content-Length", sent_length if head else str(len(payload)))
        self.end_headers()
        if self.command != "HEAD" and status not in NO_BODY:
            self.wfile.write(payload)


def _forward(backend: str | None, method: str, path: str, headers: list[tuple[str, str]],
             body: bytes) -> Reply:
    """One request to a revision's container; unreachable -> 503, no answer in time -> 504."""
    if backend is None:
        return 503, "Service Unavailable", [], UNREACHABLE
    host, _, port = backend.rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=BACKEND_TIMEOUT)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for key, value in headers:
            conn.putheader(key, value)
        conn.endheaders(body or None)
        resp = conn.getresponse()
        return resp.status, resp.reason, resp.getheaders(), resp.read()
    except TimeoutError:
        return 504, "Gateway Timeout", [], b"upstream request timeout"
    except (OSError, http.client.HTTPException):
        return 503, "Service Unavailable", [], UNREACHABLE
    finally:
        conn.close()


def _read_chunked(rfile) -> bytes:
    chunks = []
    while True:
        size = int(rfile.readline().split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while rfile.readline() not in (b"\r\n", b"\n", b""):   # trailers
                pass
            return b"".join(chunks)
        chunks.append(rfile.read(size))
        rfile.readline()
