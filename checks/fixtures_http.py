"""HTTP fixtures: the site's base URL, an anonymous session, and one signed-in session per role."""
from __future__ import annotations

from urllib.parse import urljoin, urlsplit

import pytest
import requests

from shipshape.secrets import SecretError
from shipshape.stackfile import find_root, secrets_path

TIMEOUT = 5.0
REDIRECTS = (301, 302, 303, 307, 308)
DEFAULT_PORTS = {"http": 80, "https": 443}


def base_url_for(stack, service_uri: str | None = None) -> str:
    """shipshape:checks.base_url if set (e.g. a custom domain), else the Cloud Run service's URL, else the
    host's nginx."""
    if stack.checks.base_url:
        return stack.checks.base_url.rstrip("/")
    if stack.is_cloud:
        if not service_uri:
            raise pytest.UsageError(f"{stack.source}: the Cloud Run service has no URL yet: has `pulumi up` "
                                    "created it? (or set shipshape:checks.base_url)")
        return service_uri.rstrip("/")
    if stack.tls:
        return f"https://{stack.host.address}{stack.tls.port_suffix}"
    return f"http://{stack.host.address}:{stack.host.http_port}"


def tls_applies(stack, base_url: str) -> bool:
    """shipshape:checks.tls if set; else whether the site is served over HTTPS."""
    if stack.checks.tls is not None:
        return stack.checks.tls
    return base_url.startswith("https://")


def plain_url_for(stack, base_url: str) -> str:
    """The site over plain HTTP: the host's http_port on a host, port 80 otherwise."""
    hostname = urlsplit(base_url).hostname
    if stack.is_cloud or stack.host.http_port == 80:
        return f"http://{hostname}"
    return f"http://{hostname}:{stack.host.http_port}"


def _origin(parts) -> tuple:
    return parts.scheme, (parts.hostname or "").lower(), parts.port or DEFAULT_PORTS.get(parts.scheme)


def login_url(response, base_url: str, login_path: str) -> str | None:
    """The absolute URL a redirect goes to when it is the site's own login page, else None.

    Location may be relative ("/login?next=/") or absolute on the same site; query and fragment are
    the app's business, the path must be exactly the login page's.
    """
    if response.status_code not in REDIRECTS or "Location" not in response.headers:
        return None
    target, site = urlsplit(urljoin(base_url + "/", response.headers["Location"])), urlsplit(base_url)
    same_page = _origin(target) == _origin(site) and target.path == site.path.rstrip("/") + login_path
    return target.geturl() if same_page else None


def ca_bundle(stack) -> str | bool:
    """What requests verifies certificates with: shipshape:checks.ca_file (a private CA) or the system's."""
    if not stack.checks.ca_file:
        return True
    path = find_root() / stack.checks.ca_file
    if not path.is_file():
        raise pytest.UsageError(f"{stack.source}: shipshape:checks.ca_file = {stack.checks.ca_file!r}: "
                                f"no such file {path}")
    return str(path)


@pytest.fixture(scope="session")
def base_url(stack, request) -> str:
    if stack.is_cloud and not stack.checks.base_url:
        return base_url_for(stack, request.getfixturevalue("cloud").state.service.uri)
    return base_url_for(stack)


@pytest.fixture(scope="session")
def verify(stack) -> str | bool:
    return ca_bundle(stack)


class Session(requests.Session):
    """A requests Session whose `verify` beats REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE.

    Plain requests lets those variables override a session's own CA bundle (psf/requests#3829), and
    they are commonly set (Debian images set them): checks.ca_file would be ignored.
    """

    def __init__(self, verify: str | bool, headers: dict | None = None):
        super().__init__()
        self.verify = verify
        self.headers.update(headers or {})

    def merge_environment_settings(self, url, proxies, stream, verify, cert):
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if isinstance(self.verify, str) and verify in (None, True):
            settings["verify"] = self.verify
        return settings


@pytest.fixture(scope="session")
def http(verify, invoker):
    """An anonymous keep-alive session (no redirects followed unless asked); on a private Cloud Run
    service it carries the identity token the service's IAM asks for, as every request does."""
    with Session(verify, invoker) as session:
        yield session


@pytest.fixture(scope="session")
def logins(stack, base_url, secrets, verify, invoker):
    """Sign in once per check account: role -> (response or error text, session)."""
    sessions, results = [], {}
    for role, account in stack.checks.accounts.items():
        session = Session(verify, invoker)
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
