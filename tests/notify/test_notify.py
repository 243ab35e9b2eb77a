"""Notifications against a real HTTP server on loopback: delivered when up, never raising, never leaking the URL."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from shipshape.config import Stack
from shipshape.notify import RETRIES, notify, payload

TOKEN = "T000-B000-XXXXsecretXXXX"


class Hook(BaseHTTPRequestHandler):
    """Answers with the server's `status` after `delay` seconds, and records every body it got."""

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.bodies.append(json.loads(body))
        time.sleep(self.server.delay)
        self.send_response(self.server.status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):  # keep the test output clean
        pass


class Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # a client that timed out is expected here
        pass


@pytest.fixture
def server():
    httpd = Server(("127.0.0.1", 0), Hook)
    httpd.bodies, httpd.status, httpd.delay = [], 200, 0.0
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def stack_for(url, monkeypatch, timeout=0.5):
    monkeypatch.setenv("SHIPSHAPE_TEST_WEBHOOK", url)
    return Stack(name="test", source="test", notifications={"webhook": "env:SHIPSHAPE_TEST_WEBHOOK",
                                                            "timeout": timeout})


def url_of(httpd):
    return f"http://127.0.0.1:{httpd.server_address[1]}/services/{TOKEN}"


def assert_no_url(capsys, url):
    out = capsys.readouterr()
    for text in (out.out, out.err):
        assert TOKEN not in text and url not in text
    return out.err


def test_delivers_slack_payload(server, monkeypatch, capsys):
    assert notify(stack_for(url_of(server), monkeypatch), "success", release="r1", who="alice@laptop")
    assert server.bodies == [{"text": "[test] deploy succeeded: release=r1 who=alice@laptop",
                              "stack": "test", "event": "success", "release": "r1", "who": "alice@laptop"}]
    assert assert_no_url(capsys, url_of(server)) == ""


@pytest.mark.parametrize("status, delay, why", [
    (500, 0.0, "HTTP 500"),
    (200, 1.0, "ReadTimeout"),  # slower than the 0.3 s timeout
])
def test_failing_webhook_warns_and_retries(server, monkeypatch, capsys, status, delay, why):
    server.status, server.delay = status, delay
    started = time.monotonic()
    assert notify(stack_for(url_of(server), monkeypatch, timeout=0.3), "failure", step="migrate") is False
    assert time.monotonic() - started < 5
    assert len(server.bodies) == RETRIES + 1
    err = assert_no_url(capsys, url_of(server))
    assert "notification 'failure' not sent" in err and why in err and len(err.strip().splitlines()) == 1


def test_webhook_down_never_raises(monkeypatch, capsys):
    url = f"http://127.0.0.1:9/services/{TOKEN}"  # discard port: nothing listens there
    assert notify(stack_for(url, monkeypatch), "start") is False
    assert "ConnectionError" in assert_no_url(capsys, url)


def test_no_webhook_is_a_no_op():
    assert notify(Stack(name="test", source="test"), "start") is True


def test_unresolvable_secret_and_unknown_event_warn(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("SHIPSHAPE_ROOT", str(tmp_path))  # no .secrets/test.env there
    stack = Stack(name="test", source="test", notifications={"webhook": "file:WEBHOOK_URL"})
    assert notify(stack, "start") is False
    assert notify(stack, "deployed") is False
    err = capsys.readouterr().err
    assert "file:WEBHOOK_URL could not be resolved" in err and "unknown event" in err


def test_file_secret_is_read_from_the_stack_secrets_file(server, monkeypatch, tmp_path, capsys):
    (tmp_path / ".secrets").mkdir()
    (tmp_path / ".secrets" / "test.env").write_text(f"WEBHOOK_URL={url_of(server)}\n")
    monkeypatch.setenv("SHIPSHAPE_ROOT", str(tmp_path))
    stack = Stack(name="test", source="test", notifications={"webhook": "file:WEBHOOK_URL"})
    assert notify(stack, "rollback", release="r0")
    assert server.bodies[0]["text"] == "[test] deploy rolled back: release=r0"
    assert_no_url(capsys, url_of(server))


def test_payload_carries_the_failure_reason():
    assert payload("prod", "failure", {"step": "canary", "reason": "error rate 30%"})["text"] == \
        "[prod] deploy FAILED: step=canary (error rate 30%)"


def test_retries_log_nothing_with_the_url(server, monkeypatch, caplog, capsys):
    server.status = 503
    with caplog.at_level("DEBUG"):
        assert notify(stack_for(url_of(server), monkeypatch, timeout=0.3), "start") is False
    assert len(server.bodies) == RETRIES + 1
    assert TOKEN not in caplog.text
    assert_no_url(capsys, url_of(server))
