"""Pure: where the HTTP checks look, and when the TLS pair applies, for each kind of stack."""
from __future__ import annotations

import pytest

from checks.fixtures_http import Session, base_url_for, ca_bundle, plain_url_for, tls_applies
from shipshape.config import Stack

TLS = {"certificate": "/etc/ssl/site/fullchain.pem", "key": "/etc/ssl/site/privkey.pem"}


def stack(**config) -> Stack:
    return Stack.model_validate({"name": "t", "source": "Pulumi.t.yaml", **config})


@pytest.mark.parametrize("config, base, plain, tls", [
    ({"host": {"http_port": 8080}}, "http://127.0.0.1:8080", "http://127.0.0.1:8080", False),
    ({"host": {"http_port": 80, "address": "203.0.113.9"}, "tls": TLS},
     "https://203.0.113.9", "http://203.0.113.9", True),
    ({"host": {"http_port": 8080}, "tls": {**TLS, "https_port": 8443}},
     "https://127.0.0.1:8443", "http://127.0.0.1:8080", True),
    ({"tls": TLS, "checks": {"base_url": "https://shop.example.com/"}},
     "https://shop.example.com", "http://shop.example.com", True),
    ({"target": "cloudrun", "checks": {"base_url": "https://app-x.a.run.app"}},
     "https://app-x.a.run.app", "http://app-x.a.run.app", True),
    ({"target": "cloudrun", "checks": {"base_url": "https://app-x.a.run.app", "tls": False}},
     "https://app-x.a.run.app", "http://app-x.a.run.app", False),
])
def test_urls_and_tls(config, base, plain, tls):
    s = stack(**config)
    assert (base_url_for(s), plain_url_for(s, base_url_for(s)), tls_applies(s, base_url_for(s))) == (base, plain, tls)


def test_cloud_run_checks_the_service_url_unless_base_url_says_otherwise():
    service = "https://app-x-ew.a.run.app/"
    assert base_url_for(stack(target="cloudrun"), service) == "https://app-x-ew.a.run.app"
    custom = stack(target="cloudrun", checks={"base_url": "https://shop.example.com"})
    assert base_url_for(custom, service) == "https://shop.example.com"
    with pytest.raises(pytest.UsageError, match="has `pulumi up` created it"):
        base_url_for(stack(target="cloudrun"), "")


def test_ca_file_must_exist(tmp_path, monkeypatch):
    monkeypatch.setenv("SHIPSHAPE_ROOT", str(tmp_path))
    assert ca_bundle(stack()) is True
    with pytest.raises(pytest.UsageError, match=r"shipshape:checks.ca_file = 'ca/missing.pem': no such file"):
        ca_bundle(stack(checks={"ca_file": "ca/missing.pem"}))
    (tmp_path / "ca").mkdir()
    (tmp_path / "ca" / "root.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    assert ca_bundle(stack(checks={"ca_file": "ca/root.pem"})) == str(tmp_path / "ca" / "root.pem")


def test_session_ca_file_beats_the_environments_bundle(monkeypatch):
    # requests would otherwise verify with REQUESTS_CA_BUNDLE and ignore checks.ca_file (psf/requests#3829).
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    url = "https://127.0.0.1:8443/"
    assert Session("/project/ca.pem").merge_environment_settings(url, {}, None, None, None)["verify"] \
        == "/project/ca.pem"
    assert Session(True).merge_environment_settings(url, {}, None, None, None)["verify"] \
        == "/etc/ssl/certs/ca-certificates.crt"
    assert Session("/project/ca.pem").merge_environment_settings(url, {}, None, False, None)["verify"] is False
