"""Pure tests: the nginx config text, the apply script, the stats and weights commands and parsers."""
from __future__ import annotations

import re

import pytest

from shipshape import nginx
from shipshape.config import Stack, Target
from shipshape.layout import Layout
from shipshape.remote import chain, render

LAYOUT = Layout("/srv/shipshape")


def stack(target=Target.local, http_port=8080, port=8001) -> Stack:
    return Stack.model_validate({"name": "t", "source": "Pulumi.t.yaml", "target": target,
                                 "app": {"name": "sample", "port": port},
                                 "host": {"http_port": http_port}})


@pytest.mark.parametrize("weights, lines", [
    ({"a": 90, "b": 10}, ["server 127.0.0.1:8001 weight=90 max_fails=0;", "server 127.0.0.1:8002 weight=10 max_fails=0;"]),
    ({"a": 100, "b": 0}, ["server 127.0.0.1:8001 weight=100 max_fails=0;", "server 127.0.0.1:8002 down;"]),
    ({"a": 0, "b": 100}, ["server 127.0.0.1:8001 down;", "server 127.0.0.1:8002 weight=100 max_fails=0;"]),
    ({"b": 1}, ["server 127.0.0.1:8001 down;", "server 127.0.0.1:8002 weight=1 max_fails=0;"]),
])
def test_weights_become_upstream_servers(weights, lines):
    text = nginx.site_config(stack(), LAYOUT, weights)
    for line in lines:
        assert line in text


@pytest.mark.parametrize("weights, message", [
    ({"a": 0, "b": 0}, "at least one slot"),
    ({"c": 10}, "unknown slot 'c'"),
    ({"a": 101}, "a = 101: expected an integer 0..100"),
    ({"a": -1, "b": 50}, "a = -1"),
    ({"a": 50.5}, "a = 50.5"),
    ({"a": True}, "a = True"),
])
def test_bad_weights_are_refused_naming_the_value(weights, message):
    with pytest.raises(ValueError, match="nginx weights") as error:
        nginx.site_config(stack(), LAYOUT, weights)
    assert message in str(error.value)


@pytest.mark.parametrize("target, listen", [
    (Target.local, "listen 127.0.0.1:8080;"),
    (Target.vps, "listen 8080;"),
])
def test_listen_is_loopback_only_on_the_local_target(target, listen):
    text = nginx.site_config(stack(target), LAYOUT, {"a": 100})
    assert listen in text
    assert ("127.0.0.1:8080" in text) == (target is Target.local)


@pytest.mark.parametrize("fragment", [
    "pid /srv/shipshape/nginx/nginx.pid;",
    "error_log /srv/shipshape/nginx/error.log",
    "daemon on;",
    "access_log /srv/shipshape/nginx/access.log shipshape;",
    r'log_format shipshape "$msec\t$upstream_addr\t$status\t$request_time\t$request_method\t$request_uri";',
    "keepalive 16;",
    "proxy_next_upstream error timeout;",
    "proxy_connect_timeout 2s;",
    'proxy_set_header Connection "";',
    "add_header X-Content-Type-Options nosniff always;",
    "add_header X-Frame-Options DENY always;",
    "add_header Referrer-Policy",
    "add_header Content-Security-Policy",
    "location = /nginx-health",
    "proxy_set_header X-Forwarded-For",
])
def test_config_has(fragment):
    assert fragment in nginx.site_config(stack(), LAYOUT, {"a": 100})


def test_apply_tests_the_new_file_before_moving_it_over_the_live_one():
    script = render(chain(nginx.apply_commands(LAYOUT, "events {}\n")))
    test_at = script.index("nginx -t -q -c /srv/shipshape/nginx/nginx.conf.new -p /srv/shipshape/nginx/")
    move_at = script.index("mv -f /srv/shipshape/nginx/nginx.conf.new /srv/shipshape/nginx/nginx.conf")
    reload_at = script.index("nginx -s reload -c /srv/shipshape/nginx/nginx.conf")
    assert script.index("<<'SHIPSHAPE_NGINX_CONF'\nevents {}\nSHIPSHAPE_NGINX_CONF") < test_at < move_at < reload_at
    assert "rm -f /srv/shipshape/nginx/nginx.conf.new" in script


def test_config_test_command():
    assert render(nginx.config_test_command(LAYOUT)) == (
        "nginx -t -q -c /srv/shipshape/nginx/nginx.conf -p /srv/shipshape/nginx/ -e /srv/shipshape/nginx/error.log")


def test_apply_refuses_text_that_would_end_the_heredoc():
    with pytest.raises(ValueError, match="SHIPSHAPE_NGINX_CONF"):
        nginx.apply_commands(LAYOUT, "x\nSHIPSHAPE_NGINX_CONF\nrm -rf /\n")


def test_traffic_stats_command_filters_by_upstream_and_time():
    text = render(nginx.traffic_stats_command(LAYOUT, 8002, 1700000000.25))
    assert "-v since=1700000000.250 -v addr=127.0.0.1:8002" in text
    assert "tac /srv/shipshape/nginx/access.log | awk" in text  # newest first, so it can stop early
    assert "$1 < since - 60 { exit }" in text
    assert text.endswith("date +now=%s.%N")


@pytest.mark.parametrize("stdout, expected", [
    ("requests=200 errors=10 p95_ms=12.0\n", (200, 10, 12.0, 0.05)),
    ("requests=0 errors=0 p95_ms=0.0\n", (0, 0, 0.0, 0.0)),
    ("notice\nrequests=3 errors=3 p95_ms=1.5\n", (3, 3, 1.5, 1.0)),
    ("requests=4 errors=1 p95_ms=2.0\nnow=1700000001.500000000\n", (4, 1, 2.0, 0.25)),
])
def test_parse_traffic_stats(stdout, expected):
    stats = nginx.parse_traffic_stats(stdout)
    assert (stats.requests, stats.errors, stats.p95_ms, stats.error_rate) == expected
    assert stats.host_now == (1700000001.5 if "now=" in stdout else 0.0)


def test_parse_traffic_stats_refuses_garbage():
    with pytest.raises(ValueError, match="unexpected traffic stats output"):
        nginx.parse_traffic_stats("awk: syntax error")


@pytest.mark.parametrize("stdout, expected", [
    ("running\n  server 127.0.0.1:8001 weight=90;  # slot a\n  server 127.0.0.1:8002 weight=10;\n",
     {"a": 90, "b": 10}),
    ("running\n  server 127.0.0.1:8001 down;\n  server 127.0.0.1:8002 weight=100;\n", {"a": 0, "b": 100}),
    ("stopped\n  server 127.0.0.1:8001 weight=100;\n", {}),
    ("running\n", {}),
    ("", {}),
])
def test_parse_current_weights(stdout, expected):
    assert nginx.parse_current_weights(stdout, stack()) == expected


def static_stack(url="/static/", tls=False) -> Stack:
    extra = {"tls": {"certificate": "/c.pem", "key": "/k.pem", "https_port": 8443}} if tls else {}
    return Stack.model_validate({"name": "t", "source": "Pulumi.t.yaml", "host": {"http_port": 8080},
                                 "app": {"name": "sample", "port": 8001, "static": {"dir": "public", "url": url}},
                                 **extra})


def static_location(text: str) -> str:
    start = text.index("location ~ ^/")
    return text[start:text.index("\n        }", start)]


@pytest.mark.parametrize("weights, first, second", [
    ({"a": 100, "b": 0}, "a", "b"),   # the idle slot stays a fallback
    ({"a": 90, "b": 10}, "a", "b"),
    ({"a": 10, "b": 90}, "b", "a"),
    ({"a": 0, "b": 100}, "b", "a"),
    ({"a": 50, "b": 50}, "a", "b"),   # a tie keeps slot order
])
def test_static_files_are_tried_in_the_heavier_slot_first_then_the_other_then_404(weights, first, second):
    location = static_location(nginx.site_config(static_stack(), LAYOUT, weights))
    assert location.startswith("location ~ ^/static/(?<shipshape_asset>.*)$ {")
    assert "root /srv/shipshape/static;" in location
    assert (f"try_files /slot-{first}/$shipshape_asset /slot-{second}/$shipshape_asset =404;") in location
    assert "proxy_pass" not in location  # never the app, whatever the name


@pytest.mark.parametrize("tls", [False, True])
def test_the_static_location_repeats_every_header_the_server_sets(tls):
    text = nginx.site_config(static_stack(tls=tls), LAYOUT, {"a": 100})
    location = static_location(text)
    server = text[text.rindex("server {"):text.index("location ~ ^/")]
    server_headers = [line.strip() for line in server.splitlines() if line.strip().startswith("add_header")]
    assert len(server_headers) == (5 if tls else 4)  # HSTS too under TLS
    for header in server_headers:
        assert f"            {header}\n" in location
    assert "add_header Cache-Control $shipshape_static_cache;" in location  # not `always`: no year-long 404s
    assert "application/javascript js mjs;" in location and "text/css css;" in location  # nosniff needs types


def _cache_rule(text: str) -> re.Pattern:
    return re.compile(re.search(r'"~(.+)" "public, max-age=31536000, immutable";', text).group(1))


@pytest.mark.parametrize("uri, hashed", [
    ("/slot-a/app.3f9a1c2e.js", True),
    ("/slot-a/css/site.0123456789abcdef.css", True),
    ("/slot-a/main.3F9A1C2E.chunk.js", True),
    ("/slot-a/app.3f9a1c2.js", False),        # 7 hex digits
    ("/slot-a/app-3f9a1c2e.js", False),       # not between dots
    ("/slot-a/app.3f9a1c2e", False),          # no dot after it
    ("/slot-a/jquery.min.js", False),
    ("/slot-a/v.3f9a1c2e.d/app.js", False),   # a hashed directory does not make its files immutable
    ("/slot-a/favicon.ico", False),
])
def test_hashed_names_are_immutable_and_the_rest_revalidated(uri, hashed):
    text = nginx.site_config(static_stack(), LAYOUT, {"a": 100})
    assert "map $uri $shipshape_static_cache {" in text and "default no-cache;" in text
    assert bool(_cache_rule(text).search(uri)) == hashed


def test_a_static_url_is_matched_literally():
    location = static_location(nginx.site_config(static_stack("/a.b/c-d/"), LAYOUT, {"a": 100}))
    assert location.startswith(r"location ~ ^/a\.b/c-d/(?<shipshape_asset>.*)$ {")


def test_without_static_there_is_no_static_location():
    text = nginx.site_config(stack(), LAYOUT, {"a": 100})
    assert "location ~" not in text and "shipshape_static" not in text and "/static" not in text
