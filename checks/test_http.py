"""HTTP: the site as its users reach it (requests, from the machine running the checks)."""
from __future__ import annotations

import socket
import ssl
import statistics
import time
from urllib.parse import urlsplit

import pytest

from checks.fixtures_http import login_url, plain_url_for, tls_applies

ORDER = 1
AREA = "HTTP"
TIMEOUT = 5.0
SECURITY_HEADERS = ("X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy", "Content-Security-Policy")
LATENCY_SAMPLES = 20
MIN_CERT_DAYS = 14


def _get(http, url, check, **kwargs):
    check.target(url)
    return http.get(url, timeout=TIMEOUT, allow_redirects=False, **kwargs)


def test_site_reachable(http, base_url, stack, check):
    """Front page answers 200, or redirects to the login page, which answers 200"""
    response = _get(http, base_url + "/", check)
    if response.status_code == 200:
        check.detail(f"200, {len(response.content)} bytes")
        return
    location = response.headers.get("Location")
    answered = f"GET / answered {response.status_code}" + (f" -> {location}" if location else "")
    login = login_url(response, base_url, stack.app.login_path)
    assert login, f"{answered}; expected 200 or a redirect to the login page {stack.app.login_path}"
    page = http.get(login, timeout=TIMEOUT, allow_redirects=False)
    assert page.status_code == 200, f"{answered}, but the login page answered {page.status_code}"
    check.detail(f"{response.status_code} -> {location}, login page 200")


def test_health(http, base_url, stack, check):
    """Health endpoint answers 200"""
    response = _get(http, base_url + stack.app.health_path, check)
    assert response.status_code == 200, f"answered {response.status_code}: {response.text[:200]}"
    check.detail(response.text[:100])


def test_readiness(http, base_url, stack, check):
    """Readiness endpoint answers 200 (database, Redis and schema ready)"""
    response = _get(http, base_url + stack.app.readiness_path, check)
    assert response.status_code == 200, f"answered {response.status_code}: {response.text[:200]}"
    check.detail(response.text[:100])


def test_version_is_serving_release(http, base_url, stack, check, request):
    """The app runs the release that serves (slots.json on a host, the traffic on Cloud Run), per its version endpoint"""
    if stack.app.version_path is None:
        if stack.is_cloud:
            pytest.skip("the app has no version endpoint (shipshape:app.version_path is null) and a Cloud Run "
                        "stack has no processes to ask for their release")
        _processes_run_serving_release(request.getfixturevalue("facts"), stack,
                                       request.getfixturevalue("layout"), check)
        return
    response = _get(http, base_url + stack.app.version_path, check)
    assert response.status_code == 200, f"answered {response.status_code}"
    release = response.json().get("release")
    assert release, f"no release in {response.text[:200]}"
    if stack.is_cloud:
        serving, record = _serving_revisions(request.getfixturevalue("cloud").state), "the service's traffic"
    else:
        serving, record = {slot["release"] for slot in request.getfixturevalue("facts").serving_slots().values()}, \
            "slots.json"
    assert release in serving, f"{stack.app.version_path} says {release}; {record} serves {sorted(serving) or 'nothing'}"
    check.detail(f"release {release}")


def _serving_revisions(state) -> set[str]:
    """The releases of the revisions receiving traffic (a revision `pulumi up` made: its own name)."""
    from shipshape.targets import cloudrun_state as cr

    return {state.release_of(revision) or revision for revision in cr.serving(state.service)}


def _processes_run_serving_release(facts, stack, layout, check) -> None:
    """No version endpoint: each serving slot's process must carry the slot's release as RELEASE_ID."""
    serving = facts.serving_slots()
    assert serving, f"no serving slot in slots.json ({facts['slots_error'] or facts.slots})"
    check.target(f"RELEASE_ID of {stack.runtime.value} processes "
                 + ", ".join(f"{stack.app.name}-{slot}" for slot in serving))
    listed = facts.command("processes")
    assert listed["rc"] == 0, f"no process list from {stack.runtime.value}: {listed['output'][-300:]}"
    states = facts.processes(stack, layout)
    wrong = [_mismatch(slot, state["release"], states.get(slot)) for slot, state in serving.items()]
    assert not any(wrong), "; ".join(filter(None, wrong))
    check.detail(", ".join(f"slot {slot} runs {state['release']}" for slot, state in serving.items())
                 + " (no version endpoint: RELEASE_ID of the processes)")


def _mismatch(slot: str, release: str, process) -> str | None:
    if process is None:
        return f"slot {slot} serves {release} but has no process"
    if process.release != release:
        return f"slot {slot} runs {process.release or 'no RELEASE_ID'}, slots.json says {release}"
    return None


def test_security_headers(http, base_url, stack, check):
    """Security headers are set on the front page"""
    expected = SECURITY_HEADERS + (("Strict-Transport-Security",) if tls_applies(stack, base_url) else ())
    response = _get(http, base_url + "/", check)
    missing = [name for name in expected if name not in response.headers]
    assert not missing, f"missing: {', '.join(missing)}"
    check.detail(", ".join(expected))


def test_latency(http, base_url, stack, check):
    """A small latency sample of the health endpoint stays within shipshape:checks.max_latency_ms"""
    url = base_url + stack.app.health_path
    check.target(f"{url} x{LATENCY_SAMPLES}")
    samples = []
    for _ in range(LATENCY_SAMPLES):
        started = time.perf_counter()
        http.get(url, timeout=TIMEOUT).raise_for_status()
        samples.append((time.perf_counter() - started) * 1000)
    p95 = sorted(samples)[int(0.95 * len(samples)) - 1]
    bound = stack.checks.max_latency_ms
    check.detail(f"median {statistics.median(samples):.1f} ms, p95 {p95:.1f} ms (bound {bound} ms)")
    assert p95 <= bound, f"p95 {p95:.1f} ms exceeds {bound} ms"


@pytest.fixture
def tls(stack, base_url):
    if not tls_applies(stack, base_url):
        pytest.skip("TLS not checked for this stack (the site is http://, or shipshape:checks.tls is false)")


def test_http_redirects_to_https(tls, http, stack, base_url, check):
    """Plain HTTP redirects to HTTPS"""
    response = _get(http, plain_url_for(stack, base_url) + "/", check)
    location = response.headers.get("Location", "")
    assert response.status_code in (301, 302, 307, 308) and location.startswith("https://"), \
        f"answered {response.status_code} Location={location or '-'}"
    check.detail(f"{response.status_code} -> {location}")


def test_certificate_valid(tls, base_url, verify, check):
    """The TLS certificate verifies and is valid for at least 14 more days"""
    parts = urlsplit(base_url)
    check.target(f"{parts.hostname}:{parts.port or 443}")
    context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
    try:
        with socket.create_connection((parts.hostname, parts.port or 443), timeout=TIMEOUT) as raw:
            with context.wrap_socket(raw, server_hostname=parts.hostname) as conn:
                not_after = ssl.cert_time_to_seconds(conn.getpeercert()["notAfter"])
    except ssl.SSLCertVerificationError as error:
        pytest.fail(f"certificate does not verify: {error.verify_message}", pytrace=False)
    days = (not_after - time.time()) / 86400
    check.detail(f"expires in {days:.0f} days")
    assert days >= MIN_CERT_DAYS, f"certificate expires in {days:.1f} days (< {MIN_CERT_DAYS})"
