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
    own = nginx_site.get("/own-headers")       # the app's copies are dropped: the site's, once each
    assert own.raw.headers.getlist("X-Frame-Options") == ["DENY"]
    assert own.raw.headers.getlist("Content-Security-Policy") == [proxied.headers["Content-Security-Policy"]]


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


SECURITY = ("X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy", "Content-Security-Policy")


@pytest.fixture
def static_site(nginx_site):
    """nginx_site with shipshape:app.static at /assets/: each slot's release copied (as a deploy's prepare
    does, from a 0750 release dir) and linked (as its start does). Slot a has app.3f9a1c2e.js and
    site.css; slot b has its own app.3f9a1c2e.js and only-b.txt."""
    from shipshape import release_commands as rc
    from shipshape.runtimes import Release, for_stack

    config = nginx_site.stack.model_dump(mode="json")
    config["app"]["static"] = {"dir": "public", "url": "/assets/"}
    nginx_site.stack = Stack.model_validate(config)
    layout, root = nginx_site.layout, Path(nginx_site.layout.root)
    for directory in (root, *root.parents[:2]):
        directory.chmod(directory.stat().st_mode | 0o005)  # pytest's tmp dirs are 700; workers run as nobody
    files = {"a": {"app.3f9a1c2e.js": "a-js", "site.css": "a-css"}, "b": {"app.3f9a1c2e.js": "b-js", "only-b.txt": "b"}}
    for slot, names in files.items():
        release = Release(f"r-{slot}", layout.release(f"r-{slot}"), "sha", "node", "h")
        for name, text in names.items():
            (Path(release.dir) / "public" / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(release.dir) / "public" / name).write_text(text)
        Path(release.dir).chmod(0o750)
        nginx_site.runner.run_all([*rc.static_copy_commands(layout, for_stack(nginx_site.stack, layout), release, "public"),
                                   rc.static_link_command(layout, slot, release.id)])
    return nginx_site


def test_static_hashed_names_are_immutable_others_revalidated_all_with_the_security_headers(static_site):
    static_site.apply({"a": 100, "b": 0})
    hashed, plain = static_site.get("/assets/app.3f9a1c2e.js"), static_site.get("/assets/site.css")
    assert (hashed.status_code, hashed.text, plain.status_code, plain.text) == (200, "a-js", 200, "a-css")
    assert hashed.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert plain.headers["Cache-Control"] == "no-cache"
    assert hashed.headers["Content-Type"] == "application/javascript" and plain.headers["Content-Type"] == "text/css"
    for response in (hashed, plain):
        assert all(header in response.headers for header in SECURITY), response.headers
    assert "ETag" in plain.headers  # no-cache revalidates: a 304 while the file is the same
    again = requests.get(f"http://127.0.0.1:{static_site.stack.host.http_port}/assets/site.css", timeout=5,
                         headers={"If-None-Match": plain.headers["ETag"]})
    assert (again.status_code, again.headers["Cache-Control"]) == (304, "no-cache")


@pytest.mark.parametrize("weights, js", [({"a": 90, "b": 10}, "a-js"), ({"a": 50, "b": 50}, "a-js"),
                                         ({"a": 10, "b": 90}, "b-js")])
def test_static_files_of_either_slot_are_served_during_a_canary_the_heavier_first(static_site, weights, js):
    static_site.apply(weights)
    only_b = static_site.get("/assets/only-b.txt")  # from slot b, whatever its weight
    assert (only_b.status_code, only_b.text, only_b.headers["Cache-Control"]) == (200, "b", "no-cache")
    assert static_site.get("/assets/site.css").text == "a-css"  # only in slot a
    assert static_site.get("/assets/app.3f9a1c2e.js").text == js  # in both: the heavier slot's


def test_static_misses_are_404_with_the_security_headers_and_never_reach_the_app(static_site):
    static_site.apply({"a": 50, "b": 50})
    for path in ("/assets/missing.3f9a1c2e.js", "/assets/", "/assets/nested/x.css", "/assets/../assets/nope"):
        missing = static_site.get(path)
        assert missing.status_code == 404, path
        assert all(header in missing.headers for header in SECURITY) and "Cache-Control" not in missing.headers
    for path in ("/assets/site.css", "/assets/only-b.txt"):
        assert static_site.get(path).status_code == 200
    assert sum(upstream.served for upstream in static_site.upstreams.values()) == 0
    assert static_site.get("/not-static").status_code == 200  # the rest still goes to the app
    assert sum(upstream.served for upstream in static_site.upstreams.values()) == 1
