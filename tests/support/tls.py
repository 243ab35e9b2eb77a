"""A throwaway certificate authority for TLS tests: a site certificate for 127.0.0.1 that a client
trusts through `ca.pem` only (nothing is added to the system's trust store).

    ca = TestCA(tmp_path)
    cert, key = ca.issue(tmp_path / "site", days=90)          # valid for IP 127.0.0.1
    requests.get("https://127.0.0.1:8443/", verify=str(ca.pem))
"""
from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


class TestCA:
    __test__ = False  # not a pytest test class

    def __init__(self, directory: Path):
        directory.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        self.certificate = (
            x509.CertificateBuilder().subject_name(_name("shipshape test CA")).issuer_name(_name("shipshape test CA"))
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256()))
        self.pem = directory / "ca.pem"
        self.pem.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def issue(self, directory: Path, days: float = 90, ip: str = "127.0.0.1",
              dns: str | None = None) -> tuple[Path, Path]:
        """A site certificate for `ip` (or the host name `dns`), valid `days` from now: (fullchain.pem,
        privkey.pem) in `directory`."""
        directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        subject = x509.DNSName(dns) if dns else x509.IPAddress(ipaddress.ip_address(ip))
        certificate = (
            x509.CertificateBuilder().subject_name(_name(dns or ip)).issuer_name(self.certificate.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([subject]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256()))
        chain, private = directory / "fullchain.pem", directory / "privkey.pem"
        chain.write_bytes(certificate.public_bytes(serialization.Encoding.PEM)
                          + self.certificate.public_bytes(serialization.Encoding.PEM))
        _write_key(key, private)
        return chain, private
