"""The fake Cloud Run router on loopback: traffic split, tag URLs, 503s, counting, proxying.

Backends are stdlib HTTP servers on loopback: "/" answers 200 with the revision's name, "/fail"
answers 500, "/echo" answers 200 with what it received (method, path, headers, body) as JSON.
"""
from __future__ import annotations

import http.client
import json
import socket
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support.fake_gcp.counts import Counts
from tests.support.fake_gcp.router import Router


class _Backend(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith("/echo"):
            payload = json.dumps({"method": self.command, "path": self.path,
                                  "headers": dict(self.headers.items()),
                                  "body": body.decode()}).encode()
        else:
            payload = self.server.name.encode()
        self.send_response(500 if self.path.startswith("/fail") else 200)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-Revision", self.server.name)
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, format, *args):
        pass


@pytest.fixture
def backend():
    """start(name) -> "127.0.0.1:PORT": a trivial revision container, stopped after the test."""
    servers = []

    def start(name: str) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Backend)
        server.daemon_threads, server.name = True, name
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return f"127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def counts():
    return Counts()


@pytest.fixture
def router(counts):
    router = Router(counts)
    yield router
    router.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, path: str = "/", method: str = "GET", body: bytes | None = None,
        headers: dict | None = None) -> tuple[int, bytes, http.client.HTTPResponse]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read(), resp
    finally:
        conn.close()


@pytest.mark.parametrize("old_pct, new_pct, requests, to_new", [
    (90, 10, 40, 4),
    (90, 10, 10, 1),
    (50, 50, 30, 15),
    (75, 25, 100, 25),
    (100, 0, 20, 0),
    (0, 100, 20, 20),
])
def test_split_follows_the_percentages_exactly(router, counts, backend, old_pct, new_pct,
                                               requests, to_new):
    url = router.add_service("shop")
    router.set_traffic("shop", [("shop-1", old_pct, backend("shop-1")),
                                ("shop-2", new_pct, backend("shop-2"))])
    answered = Counter(get(url)[1].decode() for _ in range(requests))
    assert answered["shop-2"] == to_new
    assert answered["shop-1"] == requests - to_new
    assert len(counts.points(revision="shop-2")) == to_new


def test_the_split_is_spread_not_bunched(router, backend):
    url = router.add_service("shop")
    router.set_traffic("shop", [("shop-1", 90, backend("shop-1")), ("shop-2", 10, backend("shop-2"))])
    answers = [get(url)[1].decode() for _ in range(40)]
    for start in range(0, 40, 10):                       # one canary request in every ten
        assert answers[start:start + 10].count("shop-2") == 1


def test_a_tag_url_reaches_only_its_revision(router, counts, backend):
    router.add_service("shop")
    router.set_traffic("shop", [("shop-1", 100, backend("shop-1"))])
    urls = router.set_tags("shop", {"canary": ("shop-2", backend("shop-2"))})
    assert {get(urls["canary"])[1] for _ in range(10)} == {b"shop-2"}
    assert [p.revision for p in counts.points(service="shop")] == ["shop-2"] * 10


def test_a_guarded_service_refuses_what_its_check_refuses_and_counts_nothing(router, counts, backend):
    url = router.add_service("shop")
    router.set_traffic("shop", [("shop-1", 100, backend("shop-1"))])
    tags = router.set_tags("shop", {"canary": ("shop-1", backend("shop-1"))})
    router.set_access("shop", lambda authorization: authorization == "Bearer good")
    for where in (url, tags["canary"]):
        assert get(where)[0] == 403
        assert get(where, headers={"Authorization": "Bearer forged"})[0] == 403
        assert get(where, headers={"Authorization": "Bearer good"})[:2] == (200, b"shop-1")
    assert len(counts.points()) == 2
    router.set_access("shop", None)                       # allUsers again
    assert get(url)[0] == 200


@pytest.mark.parametrize("dead", ["no container", "connection refused"])
def test_a_dead_backend_answers_503_counted_as_its_5xx(router, counts, dead):
    url = router.add_service("shop")
    router.set_traffic("shop", [("shop-2", 100, None if dead == "no container"
                                 else f"127.0.0.1:{free_port()}")])
    assert [get(url)[0] for _ in range(3)] == [503] * 3
    assert [(p.revision, p.code) for p in counts.points()] == [("shop-2", 503)] * 3


def test_an_empty_split_answers_503_and_counts_nothing(router, counts):
    url = router.add_service("shop")
    assert get(url)[0] == 503
    router.set_traffic("shop", [("shop-1", 0, None)])
    assert get(url)[0] == 503
    assert counts.points() == []


def test_backend_errors_pass_through_and_are_counted(router, counts, backend):
    url = router.add_service("shop")
    router.set_traffic("shop", [("shop-1", 100, backend("shop-1"))])
    assert get(url, "/fail")[0] == 500
    assert get(url, "/")[0] == 200
    assert [p.code for p in counts.points()] == [500, 200]
    assert all(p.latency_ms > 0 for p in counts.points())


def test_a_removed_tag_closes_its_listener_and_kept_tags_keep_their_port(router, backend):
    router.add_service("shop")
    first = router.set_tags("shop", {"canary": ("shop-2", backend("shop-2")),
                                     "stable": ("shop-1", backend("shop-1"))})
    assert get(first["canary"])[0] == 200
    second = router.set_tags("shop", {"stable": ("shop-1", backend("shop-1"))})
    assert second == {"stable": first["stable"]}
    with pytest.raises(ConnectionRefusedError):
        get(first["canary"])
    assert get(second["stable"])[1] == b"shop-1"


def test_proxying_passes_the_request_and_the_response(router, backend):
    url = router.add_service("shop")
    router.set_traffic("shop", [("shop-1", 100, backend("shop-1"))])
    status, body, resp = get(url, "/echo?q=1", "POST", b'{"a": 1}',
                             {"X-Custom": "yes", "Keep-Alive": "timeout=5",
                              "X-Forwarded-For": "10.0.0.1"})
    seen = json.loads(body)
    assert (status, seen["method"], seen["path"], seen["body"]) == (200, "POST", "/echo?q=1",
                                                                    '{"a": 1}')
    assert seen["headers"]["X-Custom"] == "yes"
    assert seen["headers"]["X-Forwarded-For"] == "10.0.0.1, 127.0.0.1"
    assert seen["headers"]["X-Forwarded-Proto"] == "http"
    assert "Keep-Alive" not in seen["headers"]
    assert resp.getheader("X-Revision") == "shop-1"


def test_a_chunked_request_body_reaches_the_backend_whole(router, backend):
    url = router.add_service("shop")
    router.set_traffic("shop", [("shop-1", 100, backend("shop-1"))])
    status, body, _ = get(url, "/echo", "PUT", iter([b"hello ", b"world"]))
    assert (status, json.loads(body)["body"]) == (200, "hello world")


def test_one_client_connection_is_kept_alive(router, counts, backend):
    url = router.add_service("shop")
    router.set_traffic("shop", [("shop-1", 50, backend("shop-1")), ("shop-2", 50, backend("shop-2"))])
    conn = http.client.HTTPConnection(*url.removeprefix("http://").split(":"), timeout=10)
    answers = []
    for _ in range(6):
        conn.request("GET", "/")
        resp = conn.getresponse()
        answers.append(resp.read())
        assert not resp.will_close
    conn.close()
    assert sorted(answers) == [b"shop-1"] * 3 + [b"shop-2"] * 3
    assert len(counts.points()) == 6


def test_new_backends_for_the_same_split_keep_the_rotation(router, backend):
    url = router.add_service("shop")
    old, new = backend("shop-1"), backend("shop-2")
    router.set_traffic("shop", [("shop-1", 50, old), ("shop-2", 50, new)])
    first = get(url)[1]
    router.set_traffic("shop", [("shop-1", 50, backend("shop-1")), ("shop-2", 50, new)])
    assert get(url)[1] != first


def test_unknown_services_and_close(router):
    with pytest.raises(KeyError, match="add_service"):
        router.set_traffic("nope", [])
    url = router.add_service("shop")
    assert router.add_service("shop") == url
    router.close()
    with pytest.raises(ConnectionRefusedError):
        get(url)
