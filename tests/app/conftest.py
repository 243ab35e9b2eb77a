"""Fixtures for the sample app's tests: a migrated database, one user per role, running app processes."""
from __future__ import annotations

from contextlib import contextmanager

import httpx
import pytest

from tests.support.sample_app import AppProcess, app_env, create_user, migrate

ROLES = ("admin", "member", "viewer")
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="session")
def app_database(postgres_server) -> str:
    """A database migrated to head with one user per role (username == role, password PASSWORD)."""
    url = postgres_server.create_database("sample_app")
    migrate(url)
    for role in ROLES:
        create_user(url, role, role, PASSWORD)
    return url


@pytest.fixture(scope="session")
def running_app(app_database, redis_server):
    """The app as the contract starts it, shared by the read-only tests."""
    app = AppProcess.start(app_env(app_database, redis_server.url))
    yield app
    app.terminate()


@pytest.fixture
def start_app(app_database, redis_server):
    """Factory: start an app with environment overrides; every one started is stopped afterwards."""
    started: list[AppProcess] = []

    def start(database_url: str | None = None, **env: str) -> AppProcess:
        app = AppProcess.start(app_env(database_url or app_database, redis_server.url, **env))
        started.append(app)
        return app

    yield start
    for app in started:
        app.terminate()


@contextmanager
def signed_in_client(app: AppProcess, role: str, password: str = PASSWORD):
    """An httpx client holding a session cookie for the user named `role`."""
    with httpx.Client(base_url=app.url, timeout=10) as client:
        response = client.post("/login", json={"username": role, "password": password})
        assert response.status_code == 200, response.text
        yield client
