"""PKCS#7 detached signatures of pass manifests.

One `Signer` per process: parsing certificates and loading an RSA key costs tens of
milliseconds, signing a manifest about a quarter of one. Options `DetachedSignature`
and `Binary` are both required: without `Binary` the manifest is S/MIME-canonicalized
(\\n -> \\r\\n) before hashing and the signature no longer matches the file. The
builder's default signed attributes include signingTime, which Wallet requires.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs7

from passes.apple.certs import CertificateError, SigningMaterial, key_matches_cert, load_signing_material

_OPTIONS = [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary]


class CertificateExpiredError(CertificateError):
    """Refusal to sign with a certificate outside its validity period."""


def _utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


class Signer:
    """Signs manifests with the Pass Type ID certificate; the WWDR certificate rides along."""

    def __init__(
        self,
        cert: x509.Certificate,
        key: CertificateIssuerPrivateKeyTypes,
        wwdr: x509.Certificate,
        *,
        clock: Callable[[], _dt.datetime] = _utcnow,
    ) -> None:
        if not key_matches_cert(key, cert):
            raise CertificateError("the private key does not belong to the pass certificate")
        self.cert = cert
        self.wwdr = wwdr
        self._clock = clock
        # A pass is only as valid as its chain: the earliest expiry of pass cert and WWDR.
        self.not_after: _dt.datetime = min(cert.not_valid_after_utc, wwdr.not_valid_after_utc)
        self.not_before: _dt.datetime = max(cert.not_valid_before_utc, wwdr.not_valid_before_utc)
        self._key = key
        self._hash = hashes.SHA256()
        self.signatures = 0  # how many signatures this signer made (tests, metrics)

    @classmethod
    def from_material(cls, material: SigningMaterial, *, clock: Callable[[], _dt.datetime] = _utcnow) -> Signer:
        return cls(material.cert, material.key, material.wwdr, clock=clock)

    @classmethod
    def from_dir(
        cls, certs_dir: Path, password: str | None = None, *, clock: Callable[[], _dt.datetime] = _utcnow
    ) -> Signer:
        return cls.from_material(load_signing_material(certs_dir, password), clock=clock)

    def check_valid(self, now: _dt.datetime | None = None) -> None:
        now = now or self._clock()
        if now >= self.not_after:
            raise CertificateExpiredError(
                f"signing certificate expired on {self.not_after:%Y-%m-%d %H:%M} UTC; "
                "install a renewed pass.pem/wwdr.pem before issuing passes"
            )
        if now < self.not_before:
            raise CertificateExpiredError(
                f"signing certificate is not valid before {self.not_before:%Y-%m-%d %H:%M} UTC"
            )

    def sign(self, manifest: bytes) -> bytes:
        """DER PKCS#7 SignedData, detached, over the exact manifest bytes."""
        self.check_valid()
        # The builder is made afresh on purpose: set_data() on a builder that already has
        # certificates silently drops them (cryptography 50), and a signature without the
        # WWDR certificate does not verify on devices.
        signature = (
            pkcs7.PKCS7SignatureBuilder()
            .set_data(manifest)
            # PKCS#7 signs with RSA or EC keys only; cryptography raises TypeError here for any other
            # (Apple issues RSA pass keys), so the loaders keep the wider certificate-issuer key type
            .add_signer(self.cert, self._key, self._hash)  # type: ignore[arg-type]  # RSA/EC only: see above
            .add_certificate(self.wwdr)
            .sign(serialization.Encoding.DER, _OPTIONS)
        )
        self.signatures += 1
        return signature
