"""Loading and checking the pass-signing material in `WALLET_CERTS_DIR`.

Files: `pass.pem` + `pass.key` (key optionally encrypted) or `pass.p12`, `wwdr.pem`
(Apple WWDR G4, or the dev stand-in) and, in dev, `ca.pem` (the throw-away root).
Every message names a file and a problem; none ever contains key material or passwords.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

PASS_CERT = "pass.pem"
PASS_KEY = "pass.key"
PASS_P12 = "pass.p12"
WWDR_CERT = "wwdr.pem"
ROOT_CERT = "ca.pem"


class CertificateError(ValueError):
    """Signing material that cannot be loaded or used; the message is safe to show."""


@dataclass
class SigningMaterial:
    cert: x509.Certificate
    key: CertificateIssuerPrivateKeyTypes
    wwdr: x509.Certificate
    root: x509.Certificate | None = None


@dataclass
class CertReport:
    """Result of `check_certificates`: empty `problems` means ready to sign."""

    problems: list[str] = field(default_factory=list)
    expiry: dict[str, int] = field(default_factory=dict)  # name -> whole days left (negative: expired)
    not_after: dict[str, _dt.datetime] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def _password_bytes(password: str | bytes | None) -> bytes | None:
    if password is None or password == "":
        return None
    return password.encode() if isinstance(password, str) else password


def _load_cert(path: Path) -> x509.Certificate:
    data = path.read_bytes()
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)  # a .cer straight from Apple also works
    except ValueError:
        raise CertificateError(f"{path.name} is not a readable X.509 certificate (PEM or DER)") from None


def _load_key(path: Path, password: bytes | None) -> CertificateIssuerPrivateKeyTypes:
    data = path.read_bytes()
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except TypeError:
        if password is None:
            raise CertificateError(f"{path.name} is encrypted; set WALLET_PASS_KEY_PASSWORD") from None
        raise CertificateError(f"{path.name} is not encrypted, but a password was given") from None
    except ValueError:
        raise CertificateError(f"{path.name} cannot be read: not a PEM private key, or wrong password") from None
    # PrivateKeyTypes also has key-agreement keys (DH, X25519, ML-KEM); such a pass.key is not refused
    # here but fails at its first signature, as it always has
    return key  # type: ignore[return-value]  # wider than an issuer key: see above


def _load_p12(
    path: Path, password: bytes | None
) -> tuple[CertificateIssuerPrivateKeyTypes, x509.Certificate, list[x509.Certificate]]:
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(path.read_bytes(), password)
    except ValueError:
        raise CertificateError(
            f"{path.name} cannot be opened: wrong WALLET_PASS_KEY_PASSWORD or not a PKCS#12 file"
        ) from None
    if key is None or cert is None:
        raise CertificateError(f"{path.name} must contain both the certificate and its private key")
    return key, cert, list(extra)  # type: ignore[return-value]  # PrivateKeyTypes again, as in _load_key


def load_signing_material(certs_dir: Path, password: str | None = None) -> SigningMaterial:
    """Load certificate, key, WWDR and (if present) the dev root; CertificateError when unusable."""
    certs_dir = Path(certs_dir)
    pw = _password_bytes(password)
    extra: list[x509.Certificate] = []
    if (certs_dir / PASS_CERT).is_file() and (certs_dir / PASS_KEY).is_file():
        cert = _load_cert(certs_dir / PASS_CERT)
        key = _load_key(certs_dir / PASS_KEY, pw)
    elif (certs_dir / PASS_P12).is_file():
        key, cert, extra = _load_p12(certs_dir / PASS_P12, pw)
    else:
        raise CertificateError(f"{certs_dir}: need {PASS_CERT} + {PASS_KEY}, or {PASS_P12}")
    if (certs_dir / WWDR_CERT).is_file():
        wwdr = _load_cert(certs_dir / WWDR_CERT)
    else:
        # A Keychain export sometimes carries the intermediate; use it when wwdr.pem is absent.
        found = [c for c in extra if c.subject == cert.issuer]
        if not found:
            raise CertificateError(f"{certs_dir}: missing {WWDR_CERT} (Apple WWDR G4 intermediate)")
        wwdr = found[0]
    root = _load_cert(certs_dir / ROOT_CERT) if (certs_dir / ROOT_CERT).is_file() else None
    return SigningMaterial(cert=cert, key=key, wwdr=wwdr, root=root)


def key_matches_cert(key: CertificateIssuerPrivateKeyTypes, cert: x509.Certificate) -> bool:
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key.public_key().public_bytes(*fmt) == cert.public_key().public_bytes(*fmt)


def subject_value(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> str | None:
    attrs = cert.subject.get_attributes_for_oid(oid)
    return str(attrs[0].value) if attrs else None


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _days_left(not_after: _dt.datetime, now: _dt.datetime) -> int:
    return (not_after - now) // _dt.timedelta(days=1)


def check_certificates(
    certs_dir: Path,
    pass_type_id: str,
    team_id: str,
    password: str | None = None,
    now: _dt.datetime | None = None,
) -> CertReport:
    """Everything wrong with the signing material, one clear message per problem."""
    certs_dir = Path(certs_dir)
    now = now or _dt.datetime.now(_dt.UTC)
    report = CertReport()
    problems = report.problems
    pw = _password_bytes(password)

    cert = key = wwdr = root = None
    has_pem, has_key, has_p12 = ((certs_dir / n).is_file() for n in (PASS_CERT, PASS_KEY, PASS_P12))
    extra: list[x509.Certificate] = []
    if not certs_dir.is_dir():
        problems.append(f"certificates folder {certs_dir} does not exist")
        return report
    if (has_pem and has_key) or not has_p12:  # same choice as load_signing_material
        if not has_pem:
            problems.append(f"missing {PASS_CERT} (Pass Type ID certificate){'' if has_key else f', or {PASS_P12}'}")
        if not has_key:
            problems.append(f"missing {PASS_KEY} (private key of the Pass Type ID certificate)")
        try:
            cert = _load_cert(certs_dir / PASS_CERT) if has_pem else None
        except CertificateError as exc:
            problems.append(str(exc))
        try:
            key = _load_key(certs_dir / PASS_KEY, pw) if has_key else None
        except CertificateError as exc:
            problems.append(str(exc))
    else:
        try:
            key, cert, extra = _load_p12(certs_dir / PASS_P12, pw)
        except CertificateError as exc:
            problems.append(str(exc))

    if (certs_dir / WWDR_CERT).is_file():
        try:
            wwdr = _load_cert(certs_dir / WWDR_CERT)
        except CertificateError as exc:
            problems.append(str(exc))
    else:
        found = [c for c in extra if cert is not None and c.subject == cert.issuer]
        if found:
            wwdr = found[0]
        else:
            problems.append(f"missing {WWDR_CERT} (Apple WWDR G4 intermediate that issued the pass certificate)")
    if (certs_dir / ROOT_CERT).is_file():
        try:
            root = _load_cert(certs_dir / ROOT_CERT)
        except CertificateError as exc:
            problems.append(str(exc))

    for label, file_name, c in (("pass", PASS_CERT, cert), ("wwdr", WWDR_CERT, wwdr), ("ca", ROOT_CERT, root)):
        if c is None:
            continue
        report.not_after[label] = c.not_valid_after_utc
        report.expiry[label] = _days_left(c.not_valid_after_utc, now)
        if c.not_valid_after_utc <= now:
            problems.append(f"{file_name} expired on {c.not_valid_after_utc:%Y-%m-%d}")
        elif c.not_valid_before_utc > now:
            problems.append(f"{file_name} is not valid before {c.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")

    if cert is not None:
        if key is not None and not key_matches_cert(key, cert):
            problems.append(f"{PASS_KEY} is not the private key of {PASS_CERT}")
        uid = subject_value(cert, NameOID.USER_ID)
        if uid != pass_type_id:
            problems.append(
                f"{PASS_CERT} is for pass type {uid!r} (subject UID), but WALLET_PASS_TYPE_ID is {pass_type_id!r}"
            )
        ou = subject_value(cert, NameOID.ORGANIZATIONAL_UNIT_NAME)
        if ou != team_id:
            problems.append(f"{PASS_CERT} belongs to team {ou!r} (subject OU), but WALLET_TEAM_ID is {team_id!r}")
        if wwdr is not None and not issued_by(cert, wwdr):
            problems.append(f"{WWDR_CERT} is not the issuer of {PASS_CERT} (need the WWDR G4 intermediate)")
    if wwdr is not None and root is not None and not issued_by(wwdr, root):
        problems.append(f"{ROOT_CERT} is not the issuer of {WWDR_CERT}")
    return report
