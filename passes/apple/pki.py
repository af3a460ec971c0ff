"""Throw-away dev PKI: a root CA, a WWDR stand-in and a Pass Type ID certificate.

Mirrors Apple's chain (Apple Root CA -> WWDR G4 -> Pass Type ID certificate) so that
signed passes verify with `openssl smime -verify ... -CAfile ca.pem -certfile wwdr.pem`.
The CA keys are kept (dev only, git-ignored) so that tests can issue TLS server
certificates for loopback fakes (APNs, Google) from the same root. Never used in prod.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import ipaddress
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypeGuard

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes, CertificatePublicKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from passes.apple.certs import (
    PASS_CERT,
    PASS_KEY,
    PASS_P12,
    ROOT_CERT,
    WWDR_CERT,
    issued_by,
    key_matches_cert,
    subject_value,
)

ROOT_KEY = "ca.key"
WWDR_KEY = "wwdr.key"
# Apple's EKU for Pass Type ID certificates, next to clientAuth (APNs uses the same cert over TLS).
PASS_TYPE_EKU = x509.ObjectIdentifier("1.2.840.113635.100.4.14")
DEV_ORG = "Wallet Service Dev (throw-away)"

# the key types this module writes: EC for the two CAs, RSA for the pass certificate (as Apple issues)
_DevKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0)


def _write(path: Path, data: bytes, secret: bool = False) -> None:
    """Write atomically; keys are created 0600 from the start, never widened."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _pem_key(key: CertificateIssuerPrivateKeyTypes) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: CertificatePublicKeyTypes,
    not_before: _dt.datetime,
    not_after: _dt.datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _aki(issuer_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def make_root(days: int = 3650) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _ec_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "Wallet Dev Root CA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, DEV_ORG),
        ]
    )
    now = _now()
    cert = (
        _builder(name, name, key.public_key(), now - _dt.timedelta(hours=1), now + _dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def make_wwdr(
    root_cert: x509.Certificate, root_key: CertificateIssuerPrivateKeyTypes, days: int = 1825
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _ec_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "Wallet Dev WWDR (stands in for Apple WWDR G4)"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "G4"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, DEV_ORG),
        ]
    )
    now = _now()
    cert = (
        _builder(
            name, root_cert.subject, key.public_key(), now - _dt.timedelta(hours=1), now + _dt.timedelta(days=days)
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(_aki(root_cert), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    return cert, key


def make_pass_cert(
    wwdr_cert: x509.Certificate,
    wwdr_key: CertificateIssuerPrivateKeyTypes,
    pass_type_id: str,
    team_id: str,
    *,
    not_before: _dt.datetime | None = None,
    not_after: _dt.datetime | None = None,
    key: rsa.RSAPrivateKey | None = None,
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """A Pass Type ID certificate like Apple's: UID=<pass type id>, OU=<team id>, RSA 2048."""
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.USER_ID, pass_type_id),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Pass Type ID: {pass_type_id}"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, team_id),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, DEV_ORG),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        ]
    )
    now = _now()
    not_before = not_before or now - _dt.timedelta(hours=1)
    not_after = not_after or now + _dt.timedelta(days=365)
    cert = (
        _builder(name, wwdr_cert.subject, key.public_key(), not_before, not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH, PASS_TYPE_EKU]), critical=False)
        .add_extension(_aki(wwdr_cert), critical=False)
        .sign(wwdr_key, hashes.SHA256())
    )
    return cert, key


@contextlib.contextmanager
def _locked(certs_dir: Path) -> Iterator[None]:
    # The web process and the worker may both start on a fresh checkout: one creates, the other waits.
    fd = os.open(certs_dir / ".pki.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _load_cert(path: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None


def _load_key(path: Path) -> _DevKey | None:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    # any other key type was not written here, so it is not dev material to reuse
    return key if isinstance(key, _DevKey) else None


def _usable(
    cert: x509.Certificate | None, key: _DevKey | None, issuer: x509.Certificate | None, now: _dt.datetime
) -> TypeGuard[x509.Certificate]:
    """True when cert and key are present, belong together and are valid for more than a day (from issuer)."""
    return (
        cert is not None
        and key is not None
        and key_matches_cert(key, cert)
        and cert.not_valid_before_utc <= now < cert.not_valid_after_utc - _dt.timedelta(days=1)
        and (issuer is None or issued_by(cert, issuer))
    )


def ensure_dev_pki(certs_dir: Path, pass_type_id: str, team_id: str) -> bool:
    """Create whatever dev signing material is missing or stale; True when something was written.

    Only material this module made (recognized by `ca.key` being present) is ever replaced;
    a folder holding real certificates without `ca.key` is left untouched.
    """
    certs_dir = Path(certs_dir)
    certs_dir.mkdir(parents=True, exist_ok=True)
    with _locked(certs_dir):
        now = _now()
        root_cert, root_key = _load_cert(certs_dir / ROOT_CERT), _load_key(certs_dir / ROOT_KEY)
        ours = (certs_dir / ROOT_KEY).exists()
        if not ours and any((certs_dir / n).exists() for n in (WWDR_CERT, PASS_CERT, PASS_KEY, PASS_P12)):
            return False  # foreign (possibly real) material: not ours to overwrite
        created = False
        if not _usable(root_cert, root_key, None, now):
            root_cert, root_key = make_root()
            _write(certs_dir / ROOT_KEY, _pem_key(root_key), secret=True)
            _write(certs_dir / ROOT_CERT, _pem_cert(root_cert))
            created = True
        assert root_key is not None  # _usable checked it, or it was just made
        wwdr_cert, wwdr_key = _load_cert(certs_dir / WWDR_CERT), _load_key(certs_dir / WWDR_KEY)
        if created or not _usable(wwdr_cert, wwdr_key, root_cert, now):
            wwdr_cert, wwdr_key = make_wwdr(root_cert, root_key)
            _write(certs_dir / WWDR_KEY, _pem_key(wwdr_key), secret=True)
            _write(certs_dir / WWDR_CERT, _pem_cert(wwdr_cert))
            created = True
        assert wwdr_key is not None  # as root_key above
        if (certs_dir / PASS_P12).exists() and not (certs_dir / PASS_CERT).exists():
            return created  # someone chose a .p12; it may be encrypted, leave it be
        pass_cert, pass_key = _load_cert(certs_dir / PASS_CERT), _load_key(certs_dir / PASS_KEY)
        if (
            created
            or not _usable(pass_cert, pass_key, wwdr_cert, now)
            or subject_value(pass_cert, NameOID.USER_ID) != pass_type_id
            or subject_value(pass_cert, NameOID.ORGANIZATIONAL_UNIT_NAME) != team_id
        ):
            pass_cert, pass_key = make_pass_cert(wwdr_cert, wwdr_key, pass_type_id, team_id)
            _write(certs_dir / PASS_KEY, _pem_key(pass_key), secret=True)
            _write(certs_dir / PASS_CERT, _pem_cert(pass_cert))
            created = True
        return created


def write_pass_cert(
    certs_dir: Path,
    pass_type_id: str,
    team_id: str,
    *,
    not_before: _dt.datetime | None = None,
    not_after: _dt.datetime | None = None,
    password: str | None = None,
) -> None:
    """(Re)issue pass.pem/pass.key from the dev WWDR with a chosen validity (tests: expired certs).

    With `password`, the key is written encrypted.
    """
    certs_dir = Path(certs_dir)
    wwdr_cert, wwdr_key = _load_cert(certs_dir / WWDR_CERT), _load_key(certs_dir / WWDR_KEY)
    if wwdr_cert is None or wwdr_key is None:
        raise FileNotFoundError(f"{certs_dir}: no dev {WWDR_CERT}/{WWDR_KEY}; run ensure_dev_pki first")
    cert, key = make_pass_cert(wwdr_cert, wwdr_key, pass_type_id, team_id, not_before=not_before, not_after=not_after)
    encryption = serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    _write(certs_dir / PASS_KEY, key_pem, secret=True)
    _write(certs_dir / PASS_CERT, _pem_cert(cert))


def write_pass_p12(certs_dir: Path, password: str, out: Path | None = None) -> Path:
    """Export pass.pem + pass.key (+ wwdr.pem) as a password-protected .p12, like Keychain does."""
    certs_dir = Path(certs_dir)
    cert, key = _load_cert(certs_dir / PASS_CERT), _load_key(certs_dir / PASS_KEY)
    if cert is None or key is None:
        raise FileNotFoundError(f"{certs_dir}: need an unencrypted {PASS_CERT} and {PASS_KEY}")
    wwdr = _load_cert(certs_dir / WWDR_CERT)
    data = pkcs12.serialize_key_and_certificates(
        b"pass", key, cert, [wwdr] if wwdr else None, serialization.BestAvailableEncryption(password.encode())
    )
    out = out or certs_dir / PASS_P12
    _write(out, data, secret=True)
    return out


def issue_server_cert(
    certs_dir: Path, hostnames: Sequence[str] = ("localhost", "127.0.0.1"), *, name: str = "server"
) -> tuple[Path, Path]:
    """A TLS server certificate from the dev root (for loopback fakes); returns (cert_pem, key_pem)."""
    certs_dir = Path(certs_dir)
    root_cert, root_key = _load_cert(certs_dir / ROOT_CERT), _load_key(certs_dir / ROOT_KEY)
    if root_cert is None or root_key is None:
        raise FileNotFoundError(f"{certs_dir}: no dev {ROOT_CERT}/{ROOT_KEY}; run ensure_dev_pki first")
    hostnames = list(hostnames) or ["localhost"]
    alt: list[x509.GeneralName] = []
    for h in hostnames:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            alt.append(x509.DNSName(h))
    key = _ec_key()
    now = _now()
    cert = (
        _builder(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])]),
            root_cert.subject,
            key.public_key(),
            now - _dt.timedelta(hours=1),
            now + _dt.timedelta(days=90),
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(_aki(root_cert), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    cert_path, key_path = certs_dir / f"{name}.pem", certs_dir / f"{name}.key"
    _write(key_path, _pem_key(key), secret=True)
    _write(cert_path, _pem_cert(cert))
    return cert_path, key_path
