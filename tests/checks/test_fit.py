"""Checks fit apps we did not write: a login redirect at /, no version endpoint, no check accounts or
modules, no Alembic. The check functions are called with small fakes (a parsed stack, HostFacts from a
probe-shaped dict, a `check` recorder, a tiny site on 127.0.0.1), then `pytest checks/` runs against
that site as a Cloud Run-style stack, as a user would.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
import requests

from checks import test_data, test_http
from checks.conftest import Check
from checks.fixtures_http import login_url
from shipshape.facts import HostFacts
from shipshape.layout import layout_for
from shipshape.stackfile import parse_stack

from .support import run_checks

TIMEOUT = 5.0
NO_ALEMBIC = "release has no Alembic migrations: its readiness check covers the schema"
SECURITY = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
            "Content-Security-Policy": "default-src 'self'"}
PAGE = (200, {}, "<form>sign in</form>")
NOT_LOGIN = "expected 200 or a redirect to the login page /login"


class _Handler(BaseHTTPRequestHandler):
    """Answers from `routes` ({path: (status, headers, body)}); "{base}" in a header is the site's URL."""

    routes: dict = {}
    timeout = TIMEOUT  # a stuck client cannot hold a handler thread longer than this

    def do_GET(self):
        status, headers, body = self.routes.get(self.path.split("?")[0], (404, {}, "not found"))
        data = body.encode()
        self.send_response(status)
        base = f"http://127.0.0.1:{self.server.server_port}"
        for name, value in {**headers, "Content-Length": str(len(data))}.items():
            self.send_header(name, value.replace("{base}", base))
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture
def site():
    """Factory: serve `routes` on 127.0.0.1 (a free port) until the test ends; returns the base URL."""
    servers = []

    def serve(routes: dict) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (_Handler,), {"routes": routes}))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def stack(target: str = "vps", base_url: str | None = None, **app):
    config = {"shipshape:target": target, "shipshape:app": app}
    if base_url:
        config["shipshape:checks"] = {"base_url": base_url}
    return parse_stack({"config": config}, "t", "Pulumi.t.yaml")


class Fixtures:
    """Stands in for pytest's `request`: only the fixtures given here can be asked for."""

    def __init__(self, **values):
        self.values = values

    def getfixturevalue(self, name: str):
        return self.values[name]


def outcome(call) -> tuple[str, str]:
    """Run a check with a fresh `check` recorder: (passed, its detail) | (failed | skipped, the reason)."""
    properties: list = []
    try:
        call(Check(properties))
    except AssertionError as error:
        return "failed", str(error).split("\nassert ")[0]
    except pytest.skip.Exception as error:
        return "skipped", error.msg
    return "passed", dict(properties).get("detail", "")


# --- the front page may send anonymous visitors to the login page ------------------------------------

@pytest.mark.parametrize("base, status, location, login_path, expected", [
    ("https://shop.example.com", 302, "/login", "/login", "https://shop.example.com/login"),
    ("https://shop.example.com", 303, "/login?next=/", "/login", "https://shop.example.com/login?next=/"),
    ("https://shop.example.com", 307, "login", "/login", "https://shop.example.com/login"),
    ("https://shop.example.com", 308, "https://SHOP.example.com:443/login", "/login",
     "https://SHOP.example.com:443/login"),
    ("https://shop.example.com", 301, "/auth/sign-in", "/auth/sign-in", "https://shop.example.com/auth/sign-in"),
    ("https://example.com/shop", 302, "/shop/login", "/login", "https://example.com/shop/login"),
    ("https://shop.example.com", 302, "/welcome", "/login", None),
    ("https://shop.example.com", 302, "/login/", "/login", None),
    ("https://shop.example.com", 302, "/api/login", "/login", None),
    ("https://shop.example.com", 302, "https://accounts.example.net/login", "/login", None),
    ("https://shop.example.com", 302, "http://shop.example.com/login", "/login", None),
    ("https://shop.example.com", 302, "https://shop.example.com:8443/login", "/login", None),
    ("https://shop.example.com", 302, None, "/login", None),
    ("https://shop.example.com", 300, "/login", "/login", None),
    ("https://shop.example.com", 200, "/login", "/login", None),
])
def test_login_url(base, status, location, login_path, expected):
    response = SimpleNamespace(status_code=status, headers={"Location": location} if location else {})
    assert login_url(response, base, login_path) == expected


@pytest.mark.parametrize("routes, login_path, expected", [
    ({"/": (200, {}, "hello")}, "/login", ("passed", "200, 5 bytes")),
    ({"/": (302, {"Location": "/login"}, ""), "/login": PAGE}, "/login",
     ("passed", "302 -> /login, login page 200")),
    ({"/": (303, {"Location": "{base}/login?next=/"}, ""), "/login": PAGE}, "/login",
     ("passed", "303 -> {base}/login?next=/, login page 200")),
    ({"/": (307, {"Location": "/auth/sign-in"}, ""), "/auth/sign-in": PAGE}, "/auth/sign-in",
     ("passed", "307 -> /auth/sign-in, login page 200")),
    ({"/": (301, {"Location": "/login"}, ""), "/login": PAGE}, "/login", ("passed", "301 -> /login, login page 200")),
    ({"/": (308, {"Location": "/login"}, ""), "/login": PAGE}, "/login", ("passed", "308 -> /login, login page 200")),
    ({"/": (302, {"Location": "/login"}, ""), "/login": (500, {}, "boom")}, "/login",
     ("failed", "GET / answered 302 -> /login, but the login page answered 500")),
    ({"/": (302, {"Location": "/login"}, ""), "/login": (302, {"Location": "/"}, "")}, "/login",
     ("failed", "GET / answered 302 -> /login, but the login page answered 302")),
    ({"/": (302, {"Location": "/welcome"}, ""), "/welcome": PAGE}, "/login",
     ("failed", f"GET / answered 302 -> /welcome; {NOT_LOGIN}")),
    ({"/": (302, {"Location": "http://203.0.113.9/login"}, "")}, "/login",
     ("failed", f"GET / answered 302 -> http://203.0.113.9/login; {NOT_LOGIN}")),
    ({"/": (302, {}, "")}, "/login", ("failed", f"GET / answered 302; {NOT_LOGIN}")),
    ({"/": (404, {}, "")}, "/login", ("failed", f"GET / answered 404; {NOT_LOGIN}")),
    ({"/": (500, {"Location": "/login"}, ""), "/login": PAGE}, "/login",
     ("failed", f"GET / answered 500 -> /login; {NOT_LOGIN}")),
], ids=["200", "302-login", "303-absolute-login-next", "307-custom-login-path", "301-login", "308-login",
        "login-500", "login-redirects", "302-elsewhere", "302-other-site", "302-no-location", "404",
        "500-with-location"])
def test_site_reachable(site, routes, login_path, expected):
    base = site(routes)
    with requests.Session() as http:
        result = outcome(lambda check: test_http.test_site_reachable(http, base, stack(login_path=login_path), check))
    assert result == (expected[0], expected[1].replace("{base}", base))


# --- without a version endpoint, the processes' RELEASE_ID says what runs ------------------------------

def pm2_jlist(**releases) -> str:
    """`pm2 jlist` output: one online process `app-SLOT` per keyword, with RELEASE_ID (None: unset)."""
    return json.dumps([{"name": f"app-{slot}", "pid": 4100 + i,
                        "pm2_env": {"status": "online", "restart_time": 0,
                                    "env": {"RELEASE_ID": release} if release else {}}}
                       for i, (slot, release) in enumerate(releases.items())])


def host_facts(serving: dict, processes: str = "[]", rc: int = 0, heads=None, revision=None) -> HostFacts:
    """Probe-shaped facts: `serving` is {slot: (weight, release)}; the other slot is empty."""
    slots = {slot: {"release": release, "port": 8001 + i} for i, (slot, (_, release)) in enumerate(serving.items())}
    return HostFacts({
        "slots": {"live": "a", "weights": {slot: weight for slot, (weight, _) in serving.items()},
                  "slots": slots},
        "slots_error": None,
        "commands": {"processes": {"rc": rc, "output": processes}},
        "heads": heads or {}, "database": {"revision": revision}})


ONE = {"a": (100, "r1")}
CANARY = {"a": (90, "r1"), "b": (10, "r2")}


@pytest.mark.parametrize("serving, processes, rc, expected", [
    (ONE, pm2_jlist(a="r1"), 0,
     ("passed", "slot a runs r1 (no version endpoint: RELEASE_ID of the processes)")),
    (CANARY, pm2_jlist(a="r1", b="r2"), 0,
     ("passed", "slot a runs r1, slot b runs r2 (no version endpoint: RELEASE_ID of the processes)")),
    ({"a": (100, "r1"), "b": (0, "r0")}, pm2_jlist(a="r1", b="r9"), 0,   # an idle slot is not asked
     ("passed", "slot a runs r1 (no version endpoint: RELEASE_ID of the processes)")),
    (ONE, pm2_jlist(a="r0"), 0, ("failed", "slot a runs r0, slots.json says r1")),
    (ONE, pm2_jlist(a=None), 0, ("failed", "slot a runs no RELEASE_ID, slots.json says r1")),
    (CANARY, pm2_jlist(a="r1"), 0, ("failed", "slot b serves r2 but has no process")),
    (CANARY, pm2_jlist(a="r2", b="r1"), 0,
     ("failed", "slot a runs r2, slots.json says r1; slot b runs r1, slots.json says r2")),
    (ONE, "[]", 0, ("failed", "slot a serves r1 but has no process")),
    (ONE, "not running (no live pid in /srv/shipshape/pm2/pm2.pid)", 1,
     ("failed", "no process list from pm2: not running (no live pid in /srv/shipshape/pm2/pm2.pid)")),
    ({"a": (0, "r1")}, pm2_jlist(a="r1"), 0, ("failed", "no serving slot in slots.json")),
], ids=["matches", "canary-matches", "idle-slot-not-asked", "other-release", "no-release-id", "canary-slot-missing",
        "canary-swapped", "no-app-process", "pm2-down", "nothing-serving"])
def test_release_from_processes_without_version_endpoint(serving, processes, rc, expected):
    s = stack(version_path=None)
    request = Fixtures(facts=host_facts(serving, processes, rc), layout=layout_for(s))
    # http=None: without a version endpoint the check must make no request at all.
    result = outcome(lambda check: test_http.test_version_is_serving_release(None, "http://x", s, check, request))
    assert result[0] == expected[0] and result[1].startswith(expected[1]), result


@pytest.mark.parametrize("serving, expected", [
    ({"a": (100, "r1")}, ("passed", "release r1")),
    ({"a": (100, "r2")}, ("failed", "/meta/version says r1; slots.json serves ['r2']")),
], ids=["serving", "not-serving"])
def test_release_from_version_endpoint_when_there_is_one(site, serving, expected):
    base = site({"/meta/version": (200, {"Content-Type": "application/json"}, '{"release": "r1"}')})
    s = stack(version_path="/meta/version")
    request = Fixtures(facts=host_facts(serving, pm2_jlist(a="r-other")))  # processes are not asked
    with requests.Session() as http:
        result = outcome(lambda check: test_http.test_version_is_serving_release(http, base, s, check, request))
    assert result == expected


def test_cloud_run_without_version_endpoint_skips_with_the_reason():
    s = stack("cloudrun", "https://app-x.a.run.app", version_path=None)
    status, reason = outcome(lambda check: test_http.test_version_is_serving_release(None, "", s, check, Fixtures()))
    assert status == "skipped"
    assert reason.startswith("the app has no version endpoint (shipshape:app.version_path is null)")


# --- releases without Alembic migrations -------------------------------------------------------------

NO_TABLE = {"rc": 1, "output": 'ERROR:  relation "alembic_version" does not exist'}


def at(revision: str) -> dict:
    return {"rc": 0, "output": revision}


@pytest.mark.parametrize("heads, revision, expected", [
    ({"r1": []}, NO_TABLE, ("skipped", NO_ALEMBIC)),             # a Node app on another migration tool
    ({}, NO_TABLE, ("skipped", NO_ALEMBIC)),                     # the probe found nothing for the release
    ({"r1": []}, at(""), ("skipped", NO_ALEMBIC)),               # alembic_version exists, never stamped
    ({"r1": []}, at("abc123"), ("failed", "database is at Alembic revision abc123, but release r1 has no "
                                          "migrations/versions/ revisions (left out of the artifact?)")),
    ({"r1": ["h1"]}, at("h1"), ("passed", "at head h1")),
    ({"r1": ["h1", "h2"]}, at("h1"), ("failed", "expected one Alembic head in release r1, found ['h1', 'h2']")),
    ({"r1": ["h2"]}, at("h1"), ("failed", "database at h1, head is h2")),
    ({"r1": ["h1"]}, at(""), ("failed", "database at nothing, head is h1")),
    ({"r1": ["h1"]}, NO_TABLE, ("failed", 'cannot read alembic_version: ERROR:  relation "alembic_version" '
                                          "does not exist")),
], ids=["no-table", "no-heads-entry", "never-stamped", "migrations-missing", "at-head", "two-heads", "behind",
        "empty-version-table", "no-version-table"])
def test_migrations_at_head(heads, revision, expected):
    facts = host_facts(ONE, heads=heads, revision=revision)
    assert outcome(lambda check: test_data.test_migrations_at_head(facts, stack(), check)) == expected


# --- `pytest checks/` against an app with a login redirect, no version endpoint, no accounts ----------

def foreign_app(front: tuple) -> dict:
    """A site like an app we did not write: `front` at /, a login page, health, readiness, one module."""
    return {path: (status, {**SECURITY, **headers}, body) for path, (status, headers, body) in {
        "/": front, "/login": PAGE, "/healthz": (200, {}, "ok"), "/readyz": (200, {}, "ready"),
        "/api/things": (401, {}, "sign in first")}.items()}


TO_LOGIN = (302, {"Location": "/login"}, "")
ACCESS = ("test_access::test_login", "test_access::test_module_open_to_role",
          "test_access::test_module_refuses_anonymous")
NO_ACCOUNTS = "no check accounts configured (shipshape:checks.accounts)"
NO_MODULES = "the app declares no modules (shipshape:app.modules is empty)"
LOGIN = ("skipped", "Check account for role `(none)` signs in", NO_ACCOUNTS)


@pytest.mark.parametrize("front, modules, access, failing", [
    (TO_LOGIN, [], {
        "test_access::test_login[none]": LOGIN,
        "test_access::test_module_open_to_role[none]":
            ("skipped", "`(none)` answers 200 to a signed-in `(none)`", f"{NO_ACCOUNTS}; {NO_MODULES}"),
        "test_access::test_module_refuses_anonymous[none]":
            ("skipped", "`(none)` refuses anonymous requests (401/403 or a redirect to login)", NO_MODULES)},
     set()),
    (TO_LOGIN, ["/api/things"], {
        "test_access::test_login[none]": LOGIN,
        "test_access::test_module_open_to_role[none]":
            ("skipped", "`/api/things` answers 200 to a signed-in `(none)`", NO_ACCOUNTS),
        "test_access::test_module_refuses_anonymous[/api/things]":
            ("passed", "`/api/things` refuses anonymous requests (401/403 or a redirect to login)", "401")},
     set()),
    ((302, {"Location": "/welcome"}, ""), [], {"test_access::test_login[none]": LOGIN},
     {"test_http::test_site_reachable"}),
], ids=["no-modules", "modules-no-accounts", "redirect-elsewhere"])
def test_checks_fit_an_app_we_did_not_write(tmp_path, project, site, front, modules, access, failing):
    base = site(foreign_app(front))
    # A public Cloud Run stack has no host to check; its Cloud Run checks (they ask Google) are left out.
    root = project("foreign", {"shipshape:target": "cloudrun", "shipshape:gcp": {"public": True},
                               "shipshape:app": {"version_path": None, "roles": [], "modules": modules},
                               "shipshape:checks": {"base_url": base}})
    run = run_checks(tmp_path, "foreign", root, "-k", "not test_cloudrun")
    assert run.failing() == failing, run.checklist or run.output
    assert run.returncode == (1 if failing else 0), run.output
    assert {name for name in run.outcomes if name.startswith(ACCESS)} >= set(access), run.outcomes
    rows = run.checklist.splitlines()
    for name, (result, title, says) in access.items():
        assert run.outcomes[name] == result
        row = f"| {result[:4].upper()} | {title} |"
        assert any(row in line and f"| {says} |" in line for line in rows), \
            f"no row {row} ... | {says} |:\n{run.checklist}"
    assert "got empty parameter set" not in run.checklist
    assert run.outcomes["test_http::test_version_is_serving_release"] == "skipped"
    assert "the app has no version endpoint (shipshape:app.version_path is null)" in run.checklist
    if not failing:
        assert "| PASS | Front page answers 200, or redirects to the login page, which answers 200 " \
               f"| {base}/ | 302 -> /login, login page 200 |" in run.checklist
    else:
        assert f"GET / answered 302 -> /welcome; {NOT_LOGIN}" in run.checklist
