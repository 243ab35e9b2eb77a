"""POST /login and /logout, sessions in Redis, and the three modules for every role."""
from __future__ import annotations

import httpx
import pytest

from .conftest import PASSWORD, ROLES, signed_in

MODULES = {"/api/notes": "notes", "/api/projects": "projects", "/api/reports": "report"}
ANONYMOUS = {"error": "authentication required"}


@pytest.mark.parametrize("role", ROLES)
def test_login_answers_user_and_sets_session_cookie(running_node_app, role):
    response = httpx.post(running_node_app.url + "/login", json={"username": role, "password": PASSWORD})
    assert (response.status_code, response.json()) == (200, {"username": role, "role": role})
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("session=") and "HttpOnly" in cookie and "Max-Age=28800" in cookie


@pytest.mark.parametrize("username, password", [("admin", "wrong"), ("nobody", PASSWORD), ("", "")])
def test_bad_credentials_are_401(running_node_app, username, password):
    response = httpx.post(running_node_app.url + "/login", json={"username": username, "password": password})
    assert (response.status_code, response.json()) == (401, {"error": "invalid credentials"})
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize("body", [b"not json", b"", b"[]", b'"admin"', b'{"username": "admin"}',
                                  b'{"username": 1, "password": "x"}', b'{"username": "admin", "password": null}'])
def test_malformed_login_is_400(running_node_app, body):
    response = httpx.post(running_node_app.url + "/login", content=body,
                          headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert "expected JSON" in response.json()["error"]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("path, key", MODULES.items())
def test_every_role_reads_every_module(running_node_app, role, path, key):
    with signed_in(running_node_app, role) as client:
        response = client.get(path)
    assert response.status_code == 200
    body = response.json()
    assert body["viewer"] == {"username": role, "role": role}
    assert body[key], body


def test_modules_serve_the_migrated_data(running_node_app):
    with signed_in(running_node_app, "member") as client:
        projects = client.get("/api/projects").json()["projects"]
        report = client.get("/api/reports").json()["report"]
        notes = client.get("/api/notes").json()["notes"]
    assert [(p["name"], p["status"]) for p in projects[:2]] == [("Website", "active"), ("Mobile app", "active")]
    assert report["notes_per_project"] == {"Mobile app": 1, "Website": 2}
    assert report["users_by_role"] == {"admin": 1, "member": 1, "viewer": 1}
    assert {n["title"] for n in notes} == {"Launch checklist", "Copy review", "Beta testers"}


@pytest.mark.parametrize("path", list(MODULES))
def test_anonymous_is_401(running_node_app, path):
    response = httpx.get(running_node_app.url + path)
    assert (response.status_code, response.json()) == (401, ANONYMOUS)


@pytest.mark.parametrize("cookie", ["forged.signature", "x", "a.b.c", ""])
def test_forged_cookie_is_401(running_node_app, cookie):
    response = httpx.get(running_node_app.url + "/api/notes", headers={"cookie": f"session={cookie}"})
    assert response.status_code == 401


def test_altered_session_id_is_401(running_node_app):
    with signed_in(running_node_app, "admin") as client:
        session_id, signature = client.cookies["session"].split(".")
        tampered = ("A" if session_id[0] != "A" else "B") + session_id[1:]
        response = httpx.get(running_node_app.url + "/api/notes",
                             headers={"cookie": f"session={tampered}.{signature}"})
    assert response.status_code == 401


def test_session_lives_in_redis_with_ttl(running_node_app, redis_server):
    with signed_in(running_node_app, "viewer") as client:
        session_id = client.cookies["session"].split(".")[0]
        ttl = int(redis_server.cli("TTL", f"session:{session_id}"))
        assert 28000 < ttl <= 28800
        redis_server.cli("DEL", f"session:{session_id}")
        assert client.get("/api/notes").status_code == 401, "a session deleted in Redis must end"


def test_logout_ends_the_session(running_node_app):
    with signed_in(running_node_app, "admin") as client:
        cookie = client.cookies["session"]
        response = client.post("/logout")
        assert (response.status_code, response.json()) == (200, {"status": "signed out"})
        assert "Max-Age=0" in response.headers["set-cookie"]
        again = httpx.get(running_node_app.url + "/api/notes", headers={"cookie": f"session={cookie}"})
        assert again.status_code == 401


def test_logout_anonymous_is_401(running_node_app):
    response = httpx.post(running_node_app.url + "/logout")
    assert (response.status_code, response.json()) == (401, ANONYMOUS)


@pytest.mark.parametrize("method, path, status", [("GET", "/login", 405), ("POST", "/api/notes", 405),
                                                  ("GET", "/no/such/page", 404)])
def test_wrong_method_and_unknown_path(running_node_app, method, path, status):
    assert httpx.request(method, running_node_app.url + path).status_code == status
