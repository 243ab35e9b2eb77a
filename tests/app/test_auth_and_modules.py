"""Login per role, every module reachable by every role, anonymous and bad passwords refused."""
from __future__ import annotations

import httpx
import pytest

from tests.support.sample_app import create_user

from .conftest import PASSWORD, ROLES, signed_in_client

MODULES = ("/api/notes", "/api/projects", "/api/reports")


@pytest.mark.parametrize("role", ROLES)
def test_login_per_role_sets_session_cookie_and_stores_session_in_redis(running_app, redis_server, role):
    response = httpx.post(running_app.url + "/login", json={"username": role, "password": PASSWORD})
    assert response.status_code == 200
    assert response.json() == {"username": role, "role": role}
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("session=") and "httponly" in cookie.lower()
    session_id = response.cookies["session"].rsplit(".", 2)[0]  # value.timestamp.signature
    assert role in redis_server.cli("GET", f"session:{session_id}")


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("module", MODULES)
def test_every_module_reachable_by_every_role(running_app, role, module):
    with signed_in_client(running_app, role) as client:
        response = client.get(module)
    assert response.status_code == 200
    assert response.json()["viewer"] == {"username": role, "role": role}


@pytest.mark.parametrize("module", MODULES + ("/api/slow",))
def test_anonymous_refused_with_json_401(running_app, module):
    response = httpx.get(running_app.url + module)
    expected = 404 if module == "/api/slow" else 401  # slow endpoint is off unless APP_ALLOW_SLOW=1
    assert response.status_code == expected
    assert response.headers["content-type"] == "application/json"


@pytest.mark.parametrize("cookie", ["forged", "abc.def.ghi", ""])
def test_forged_cookie_refused(running_app, cookie):
    response = httpx.get(running_app.url + "/api/notes", cookies={"session": cookie})
    assert response.status_code == 401
    assert response.json() == {"error": "authentication required"}


@pytest.mark.parametrize("body", [
    {"username": "admin", "password": "wrong"},
    {"username": "nobody", "password": PASSWORD},
    {"username": "admin", "password": ""},
])
def test_bad_credentials_refused(running_app, body):
    response = httpx.post(running_app.url + "/login", json=body)
    assert response.status_code == 401
    assert response.json() == {"error": "invalid credentials"}
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize("content", [b"not json", b"[1, 2]", b'{"username": 1, "password": 2}'])
def test_malformed_login_is_400(running_app, content):
    response = httpx.post(running_app.url + "/login", content=content)
    assert response.status_code == 400


def test_logout_ends_session(running_app):
    with signed_in_client(running_app, "member") as client:
        cookie = client.cookies["session"]
        assert client.post("/logout").status_code == 200
    # The old cookie, replayed, no longer names a session.
    response = httpx.get(running_app.url + "/api/notes", cookies={"session": cookie})
    assert response.status_code == 401


def test_module_contents_come_from_the_database(running_app):
    with signed_in_client(running_app, "viewer") as client:
        projects = client.get("/api/projects").json()["projects"]
        report = client.get("/api/reports").json()["report"]
    assert [(p["name"], p["status"]) for p in projects][:2] == [("Website", "active"), ("Mobile app", "active")]
    assert report["notes_per_project"]["Website"] == 2
    assert report["users_by_role"]["viewer"] >= 1


def test_create_user_is_idempotent_and_updates_password(running_app, app_database, postgres_server):
    assert "created" in create_user(app_database, "carol", "viewer", "first-password")
    assert "updated" in create_user(app_database, "carol", "member", "second-password")
    login = lambda pw: httpx.post(running_app.url + "/login", json={"username": "carol", "password": pw})
    assert login("first-password").status_code == 401
    assert login("second-password").json() == {"username": "carol", "role": "member"}
    assert postgres_server.psql("SELECT count(*) FROM users WHERE username = 'carol'", "sample_app") == "1"
