"""The TLS checks on the real e2e stack served over HTTPS: `fab setup` applies shipshape:tls to the running
site, every check passes (the TLS pair included, not skipped), and each TLS fault fails its own check.

The certificate comes from a throwaway CA (tests/support/tls.py) that the checks trust through
shipshape:checks.ca_file, as a user with a private CA would configure it. Teardown runs `fab setup`
with the plain stack file again, which puts the plain-HTTP site back.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from shipshape import nginx
from tests.support.services import free_port
from tests.support.tls import TestCA

from .breaks import HTTP
from .support import CheckRun, run_checks, variant_root

TLS_PAIR = {"test_http::test_http_redirects_to_https", "test_http::test_certificate_valid"}


@dataclass
class TlsStack:
    root: Path            # project root whose Pulumi.local.yaml sets shipshape:tls
    ca: TestCA
    live: str             # the directory on the host holding fullchain.pem and privkey.pem
    setup_output: str = ""
    baseline: CheckRun | None = None   # the checks' run once `fab setup` applied TLS

    def install(self, runner, directory: Path) -> None:
        """Put a certificate pair where shipshape:tls points (nginx serves it from its next reload)."""
        for name in ("fullchain.pem", "privkey.pem"):
            runner.put(directory / name, f"{self.live}/{name}")
        runner.run(["chmod", "600", f"{self.live}/privkey.pem"])


@pytest.fixture(scope="module")
def tls_stack(local_stack, deployed_stack, tmp_path_factory):
    runner, layout = deployed_stack.runner, deployed_stack.layout
    here = tmp_path_factory.mktemp("tls")
    ca = TestCA(here / "ca")
    ca.issue(here / "good", days=90)
    live = f"{layout.root}/tls"
    runner.run(["install", "-d", "-m", "700", live])
    tls = {"certificate": f"{live}/fullchain.pem", "key": f"{live}/privkey.pem", "https_port": free_port()}
    root = variant_root(deployed_stack.root, here / "project", {"ca_file": str(ca.pem)},
                        config={"shipshape:tls": tls})
    stack = TlsStack(root, ca, live)
    stack.install(runner, here / "good")
    try:
        done = replace(local_stack, root=root).fab("setup", "--stack", "local")
        stack.setup_output = done.stdout + done.stderr
        stack.baseline = run_checks(here, "local", root)
        yield stack
    finally:
        local_stack.fab("setup", "--stack", "local")   # the plain site again, weights kept
        runner.run(["rm", "-rf", live])


def test_fab_setup_applies_tls_and_every_check_passes(tls_stack):
    assert "nginx site rewritten" in tls_stack.setup_output
    run = tls_stack.baseline
    assert not run.failing(), run.checklist
    assert TLS_PAIR <= run.with_outcome("passed"), run.checklist  # run, not skipped
    assert "Strict-Transport-Security" in run.checklist


def _reload(deployed_stack) -> None:
    """nginx re-reads the certificate files on reload only."""
    deployed_stack.runner.run(nginx.reload_command(deployed_stack.layout))


def _edit_site(deployed_stack, old: str, new: str) -> str:
    runner, layout = deployed_stack.runner, deployed_stack.layout
    current = runner.run(nginx.read_config_command(layout)).stdout
    assert old in current, f"{old!r} not in the live nginx.conf"
    runner.run_all(nginx.apply_commands(layout, current.replace(old, new)))
    return current


def _checks_while_serving(tls_stack, deployed_stack, tmp_path, certificate: Path):
    """Serve `certificate` (a directory holding the pair), run the checks, then serve a good one again."""
    tls_stack.install(deployed_stack.runner, certificate)
    try:
        _reload(deployed_stack)
        return run_checks(tmp_path, "local", tls_stack.root)
    finally:
        tls_stack.ca.issue(tmp_path / "good", days=90)
        tls_stack.install(deployed_stack.runner, tmp_path / "good")
        _reload(deployed_stack)


def test_certificate_expiring_in_10_days_fails_only_the_certificate_check(tls_stack, deployed_stack, tmp_path):
    tls_stack.ca.issue(tmp_path / "short", days=10)
    run = _checks_while_serving(tls_stack, deployed_stack, tmp_path, tmp_path / "short")
    run.assert_fails_only({"test_http::test_certificate_valid"}, baseline=tls_stack.baseline)
    assert "certificate expires in 10.0 days (< 14)" in run.checklist, run.checklist


def test_certificate_from_an_untrusted_ca_fails_verification(tls_stack, deployed_stack, tmp_path):
    TestCA(tmp_path / "other").issue(tmp_path / "stranger", days=90)
    run = _checks_while_serving(tls_stack, deployed_stack, tmp_path, tmp_path / "stranger")
    # Users cannot connect either: every HTTPS check fails with it, honestly.
    run.assert_fails_only({"test_http::test_certificate_valid"}, HTTP, tls_stack.baseline)
    assert "certificate does not verify" in run.checklist


def test_plain_http_serving_the_site_fails_only_the_redirect_check(tls_stack, deployed_stack, tmp_path):
    redirect = "return 308 https://"
    original = _edit_site(deployed_stack, redirect, "proxy_pass http://app; #")
    try:
        run = run_checks(tmp_path, "local", tls_stack.root)
    finally:
        deployed_stack.runner.run_all(nginx.apply_commands(deployed_stack.layout, original))
    run.assert_fails_only({"test_http::test_http_redirects_to_https"}, baseline=tls_stack.baseline)
