"""HTTP fixtures: the site's base URL, an anonymous session, and one signed-in session per role."""
from __future__ import annotations

import pytest
import requests

from shipshape.secrets import SecretError
from shipshape.stackfile import secrets_path

TIMEOUT = 5.0


def base_url_for(stack) -> str:
    """shipshape:checks.base_url if set (the service URL on Cloud Run), else the host's nginx."""
    if stack.checks.base_url:
        return stack.checks.base_url.rstrip("/")
    if stack.is_cloud:
        raise pytest.UsageError(f"{stack.source}: shipshape:checks.base_url is required for a Cloud Run "
                                "stack: set it to the service URL")
    if stack.checks.tls:
        return f"https://{stack.host.address}"
    return f"http://{stack.host.address}:{stack.host.http_port}"


@pytest.fixture(scope="session")
def base_url(stack) -> str:
    return base_url_for(stack)


@pytest.fixture(scope="session")
def http():
    """An anonymous keep-alive session (no redirects followed unless asked)."""
    with requests.Session() as session:
        yield session


@pytest.fixture(scope="session")
def logins(stack, base_url, secrets):
    """Sign in once per check account: role -> (response or error text, session)."""
    sessions, results = [], {}
    for role, account in stack.checks.accounts.items():
        session = requests.Session()
        sessions.append(session)
        results[role] = (_login(stack, base_url, session, account, secrets), session)
    yield results
    for session in sessions:
        session.close()


def _login(stack, base_url, session, account, secrets):
    try:
        password = account.password.resolve(secrets_path(stack.name))
    except SecretError as error:
        return f"password for {account.username} unavailable: {error}"
    secrets.append(password)
    try:
        return session.post(base_url + stack.app.login_path, timeout=TIMEOUT,
                            json={"username": account.username, "password": password.reveal()})
    except requests.RequestException as error:
        return f"login request failed: {type(error).__name__}"


@pytest.fixture
def signed_in(logins, role):
    """The session of `role`'s check account; skips (login check fails) when it could not sign in."""
    response, session = logins[role]
    if isinstance(response, str) or response.status_code != 200:
        pytest.skip(f"cannot sign in as {role}: see the login check")
    return session
