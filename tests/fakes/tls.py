"""Throw-away TLS material for the fakes: a CA, a loopback server certificate, a Pass Type ID
client certificate (subject UID = pass type id) and an APNs .p8-style EC key.

Independent of passes/pki.py on purpose: the fakes must not depend on the code under test.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_ONE_DAY = dt.timedelta(days=1)


def _pem_key(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class Issued:
    cert_pem: bytes
    key_pem: bytes

    @property
    def chain_pem(self) -> bytes:
        """Certificate followed by its key: the one-file form aioapns' cert mode loads."""
        return self.cert_pem + self.key_pem


class CertAuthority:
    """An in-memory CA that issues leaf certificates."""

    def __init__(self, name: str = "Fake Test Root") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _ONE_DAY)
            .not_valid_after(now + 30 * _ONE_DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )

    @property
    def cert_pem(self) -> bytes:
        return _pem_cert(self.cert)

    def _issue(
        self,
        subject: x509.Name,
        usage: x509.ObjectIdentifier,
        san: list[x509.GeneralName] | None = None,
        key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | None = None,
    ) -> Issued:
        key = key or ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _ONE_DAY)
            .not_valid_after(now + 30 * _ONE_DAY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return Issued(_pem_cert(cert), _pem_key(key))

    def server_cert(self, hostnames: tuple[str, ...] = ("127.0.0.1", "localhost")) -> Issued:
        san: list[x509.GeneralName] = []
        for name in hostnames:
            try:
                san.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                san.append(x509.DNSName(name))
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])])
        return self._issue(subject, ExtendedKeyUsageOID.SERVER_AUTH, san)

    def pass_type_cert(self, pass_type_id: str, team_id: str = "TEAM123456") -> Issued:
        """Shaped like Apple's Pass Type ID certificate: UID carries the pass type id."""
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.USER_ID, pass_type_id),
                x509.NameAttribute(NameOID.COMMON_NAME, f"Pass Type ID: {pass_type_id}"),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, team_id),
            ]
        )
        return self._issue(subject, ExtendedKeyUsageOID.CLIENT_AUTH)


@dataclass(frozen=True)
class ApnsSigningKey:
    """An APNs auth key (.p8): EC P-256, PKCS#8 PEM, plus its public half for the fake."""

    key_id: str
    team_id: str
    p8_pem: str
    public_pem: bytes

    @classmethod
    def generate(cls, key_id: str = "KEYID12345", team_id: str = "TEAM123456") -> ApnsSigningKey:
        key = ec.generate_private_key(ec.SECP256R1())
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return cls(key_id, team_id, _pem_key(key).decode(), public)


@dataclass(frozen=True)
class TlsFiles:
    """PEM files on disk for the subprocess form of the fakes."""

    ca: Path
    server_cert: Path
    server_key: Path


def write_server_files(ca: CertAuthority, directory: Path) -> TlsFiles:
    directory.mkdir(parents=True, exist_ok=True)
    server = ca.server_cert()
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    files.ca.write_bytes(ca.cert_pem)
    files.server_cert.write_bytes(server.cert_pem)
    files.server_key.write_bytes(server.key_pem)
    files.server_key.chmod(0o600)
    return files
