"""Access: every check account signs in, every module is open to every role and closed to anonymous."""
from __future__ import annotations

from checks.fixtures_http import login_url

ORDER = 2
AREA = "Access"
TIMEOUT = 5.0
REFUSED = (401, 403)


def test_login(logins, role, stack, base_url, check):
    """Check account for role `{role}` signs in"""
    response, _ = logins[role]
    check.target(f"POST {base_url}{stack.app.login_path} as {stack.checks.accounts[role].username}")
    assert not isinstance(response, str), response
    assert response.status_code == 200, f"answered {response.status_code}: {response.text[:200]}"
    assert response.cookies, "no session cookie in the answer"
    check.detail("200, session cookie set")


def test_module_open_to_role(signed_in, base_url, module, role, check):
    """`{module}` answers 200 to a signed-in `{role}`"""
    url = base_url + module
    check.target(f"GET {url} as {role}")
    response = signed_in.get(url, timeout=TIMEOUT, allow_redirects=False)
    assert response.status_code == 200, f"{module} refused role {role}: {response.status_code}"
    check.detail("200")


def test_module_refuses_anonymous(http, base_url, module, stack, check):
    """`{module}` refuses anonymous requests (401/403 or a redirect to login)"""
    url = base_url + module
    check.target(f"GET {url} anonymous")
    response = http.get(url, timeout=TIMEOUT, allow_redirects=False, cookies={})
    to_login = login_url(response, base_url, stack.app.login_path) is not None
    assert response.status_code in REFUSED or to_login, \
        f"{module} let an anonymous request in: {response.status_code}"
    check.detail(str(response.status_code))
