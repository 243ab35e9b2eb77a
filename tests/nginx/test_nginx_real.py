"""End to end against a real nginx: weights split traffic, reloads drop nothing, bad configs never land,
a stopped slot costs no 502s, and the access-log stats count each upstream's requests and errors."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import requests

from shipshape import nginx
from shipshape.config import Stack
from shipshape.remote import RemoteError
from tests.support.tls import TestCA

from .conftest import free_port


@pytest.mark.parametrize("weights, low, high", [
    ({"a": 90, "b": 10}, 10, 30),     # nginx's smooth weighted round robin: ~20 of 200
    ({"a": 50, "b": 50}, 80, 120),
    ({"a": 100, "b": 0}, 0, 0),
    ({"a": 0, "b": 100}, 200, 200),
])
def test_weights_split_traffic(nginx_site, weights, low, high):
    nginx_site.apply(weights)
    seen = nginx_site.served_by(200)
    assert low <= seen["b"] <= high, seen
    assert seen["a"] + seen["b"] == 200


def test_current_weights_read_what_nginx_serves(nginx_site):
    read = lambda: nginx.parse_current_weights(  # noqa: E731
        nginx_site.runner.run(nginx.current_weights_command(nginx_site.layout)).stdout, nginx_site.stack)
    assert read() == {}
    nginx_site.apply({"a": 90, "b": 10})
    assert read() == {"a": 90, "b": 10}
    nginx_site.apply({"a": 0, "b": 100})
    assert read() == {"a": 0, "b": 100}


def test_weight_changes_under_load_drop_no_request(nginx_site):
    nginx_site.apply({"a": 100, "b": 0})
    statuses, stop = [], threading.Event()

    def load():
        while not stop.is_set() and len(statuses) < 2000:
            try:
                statuses.append(nginx_site.get().status_code)
            except Exception as error:  # a refused or reset connection is a dropped request
                statuses.append(repr(error))

    client = threading.Thread(target=load)
    client.start()
    for weights in ({"a": 90, "b": 10}, {"a": 50, "b": 50}, {"a": 0, "b": 100}, {"a": 100, "b": 0}):
        time.sleep(0.2)
        nginx_site.apply(weights)
    time.sleep(0.2)
    stop.set()
    client.join(timeout=10)
    assert len(statuses) > 50
    assert set(statuses) == {200}, [s for s in statuses if s != 200][:5]


def test_bad_config_is_rejected_and_the_old_one_keeps_serving(nginx_site):
    nginx_site.apply({"a": 100, "b": 0})
    live = Path(nginx_site.layout.nginx_conf).read_text()
    bad = nginx.site_config(nginx_site.stack, nginx_site.layout, {"a": 0, "b": 100}).replace(
        "keepalive 16;", "keepalive banana;")
    with pytest.raises(RemoteError, match='invalid value "banana"'):
        nginx_site.runner.run_all(nginx.apply_commands(nginx_site.layout, bad))
    assert Path(nginx_site.layout.nginx_conf).read_text() == live
    nginx_site.runner.run(nginx.config_test_command(nginx_site.layout))  # the live one still passes
    Path(nginx_site.layout.nginx_conf).write_text(bad)
    with pytest.raises(RemoteError, match="banana"):
        nginx_site.runner.run(nginx.config_test_command(nginx_site.layout))
    Path(nginx_site.layout.nginx_conf).write_text(live)
    assert not Path(nginx_site.layout.nginx_conf + ".new").exists()
    assert nginx_site.served_by(20) == {"a": 20, "b": 0}


def test_a_stopped_slot_costs_no_502_and_retries_count_for_the_slot_that_answered(nginx_site):
    nginx_site.apply({"a": 50, "b": 50})
    since = time.time()
    nginx_site.upstreams["a"].close()
    assert nginx_site.served_by(50) == {"a": 0, "b": 50}
    log = Path(nginx_site.layout.access_log).read_text()
    assert "127.0.0.1:%d, 127.0.0.1:%d" % tuple(nginx.slot_ports(nginx_site.stack).values()) in log
    stats = nginx_site.stats(since)
    assert (stats["a"].requests, stats["b"].requests) == (0, 50)


def test_traffic_stats_count_each_upstreams_requests_and_errors(nginx_site):
    nginx_site.apply({"a": 50, "b": 50})
    nginx_site.served_by(30)  # before `since`: not counted
    time.sleep(0.05)
    since = time.time()
    seen = {"a": 0, "b": 0}
    for _ in range(200):
        response = nginx_site.get("/fail-on-b")
        seen[response.text] += 1
        assert response.status_code == (500 if response.text == "b" else 200)
    stats = nginx_site.stats(since)
    assert (stats["a"].requests, stats["a"].errors, stats["a"].error_rate) == (seen["a"], 0, 0.0)
    assert (stats["b"].requests, stats["b"].errors, stats["b"].error_rate) == (seen["b"], seen["b"], 1.0)
    assert 0 < stats["a"].p95_ms < 1000
    assert abs(stats["a"].host_now - time.time()) < 5


def test_traffic_stats_p95_is_per_upstream(nginx_site):
    nginx_site.apply({"a": 50, "b": 50})
    since = time.time()
    nginx_site.served_by(40, "/slow-on-b")
    stats = nginx_site.stats(since)
    assert stats["b"].p95_ms >= 80 > stats["a"].p95_ms, stats


def test_traffic_stats_without_a_log_are_zero(nginx_site):
    stats = nginx.parse_traffic_stats(nginx_site.runner.run(
        nginx.traffic_stats_command(nginx_site.layout, 1, 0)).stdout)
    assert (stats.requests, stats.errors, stats.error_rate) == (0, 0, 0.0)


def test_security_headers_and_health(nginx_site):
    nginx_site.apply({"a": 100})
    response = nginx_site.get("/nginx-health")
    assert (response.status_code, response.text) == (200, "ok\n")
    proxied = nginx_site.get("/")
    for header in ("X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy", "Content-Security-Policy"):
        assert header in proxied.headers
    assert "Server" not in proxied.headers or proxied.headers["Server"] == "nginx"


def _with_tls(stack: Stack, **tls) -> Stack:
    """`stack` with shipshape:tls (validated again, as a stack file would be)."""
    config = stack.model_dump(mode="json")
    config["tls"] = {**(config["tls"] or {}), **tls}
    return Stack.model_validate(config)


@pytest.fixture
def tls_site(nginx_site, tmp_path):
    """nginx_site with shipshape:tls: a certificate for 127.0.0.1 from a throwaway CA, HTTPS on a free port."""
    ca = TestCA(tmp_path / "ca")
    certificate, key = ca.issue(tmp_path / "live")
    nginx_site.stack = _with_tls(nginx_site.stack, certificate=str(certificate), key=str(key), https_port=free_port())
    nginx_site.apply({"a": 100, "b": 0})
    return nginx_site, ca


def test_tls_serves_https_and_redirects_plain_http(tls_site):
    site, ca = tls_site
    https_port = site.stack.tls.https_port
    plain = requests.get(f"http://127.0.0.1:{site.stack.host.http_port}/notes?x=1", allow_redirects=False, timeout=5)
    assert plain.status_code == 308
    assert plain.headers["Location"] == f"https://127.0.0.1:{https_port}/notes?x=1"
    secure = requests.get(f"https://127.0.0.1:{https_port}/", verify=str(ca.pem), timeout=5)
    assert (secure.status_code, secure.text) == (200, "a")
    assert secure.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert secure.headers["X-Frame-Options"] == "DENY"  # HSTS did not hide the site's other headers
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"https://127.0.0.1:{https_port}/", timeout=5)  # untrusted without the CA


def test_tls_still_answers_acme_challenges_and_health_over_plain_http(tls_site):
    site, _ = tls_site
    for directory in (Path(site.layout.root), *Path(site.layout.root).parents[:2]):
        directory.chmod(directory.stat().st_mode | 0o005)  # pytest's tmp dirs are 700; workers run as nobody
    challenge = Path(site.layout.acme_webroot) / ".well-known" / "acme-challenge"
    challenge.mkdir(parents=True)
    (challenge / "token123").write_text("token123.thumbprint")
    base = f"http://127.0.0.1:{site.stack.host.http_port}"
    answer = requests.get(f"{base}/.well-known/acme-challenge/token123", allow_redirects=False, timeout=5)
    assert (answer.status_code, answer.text) == (200, "token123.thumbprint")
    assert requests.get(f"{base}/nginx-health", allow_redirects=False, timeout=5).status_code == 200


def test_tls_with_a_missing_certificate_never_lands(tls_site):
    site, ca = tls_site
    broken = _with_tls(site.stack, certificate="/nonexistent/fullchain.pem")
    before = Path(site.layout.nginx_conf).read_text()
    with pytest.raises(RemoteError, match="fullchain.pem"):
        site.runner.run_all(nginx.apply_commands(site.layout, nginx.site_config(broken, site.layout, {"a": 100})))
    assert Path(site.layout.nginx_conf).read_text() == before
    assert requests.get(f"https://127.0.0.1:{site.stack.tls.https_port}/", verify=str(ca.pem),
                        timeout=5).status_code == 200
