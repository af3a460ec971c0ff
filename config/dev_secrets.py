"""Dev-only generated secrets (API keys per role, ledger secret, a Google service-account key),
kept in the git-ignored certs folder."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from config.google import GoogleSettings, read_service_account
from config.settings import ROLES, ConfigError, Settings

FILE_NAME = "dev-secrets.json"
DEV_SERVICE_ACCOUNT_EMAIL = "wallet-dev@dev.iam.gserviceaccount.com"
# never resolves (RFC 2606 .invalid): dev's token requests, if any were made, go nowhere
DEV_TOKEN_URI = "https://oauth2.dev.invalid/token"


def _generate() -> dict[str, Any]:
    return {
        "api_keys": {role: f"dev-{role}-{secrets.token_urlsafe(24)}" for role in ROLES},
        "ledger_secret": secrets.token_urlsafe(32),
    }


def load_or_create(certs_dir: Path) -> tuple[dict[str, Any], bool]:
    path = certs_dir / FILE_NAME
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8")), False
    certs_dir.mkdir(parents=True, exist_ok=True)
    data = _generate()
    # created with owner-only permissions from the start: it holds keys
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
    return data, True


def derive_link_secret(ledger_secret: str) -> str:
    """Signed pass links need a key of their own; without WALLET_LINK_SECRET it is derived
    (domain-separated) from the ledger secret so prod needs no extra variable."""
    return hmac.new(ledger_secret.encode(), b"wallet-service/pass-links/v1", hashlib.sha256).hexdigest()


def derive_session_secret(ledger_secret: str) -> str:
    """Dev only (prod requires WALLET_SESSION_SECRET): console sessions and form tokens get a key of
    their own, derived (domain-separated) from the dev ledger secret."""
    return hmac.new(ledger_secret.encode(), b"wallet-service/sessions/v1", hashlib.sha256).hexdigest()


def _service_account_info() -> dict[str, Any]:
    """A throw-away key file shaped like the one Google's console downloads (facts §2)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return {
        "type": "service_account",
        "project_id": "dev",
        "private_key_id": secrets.token_hex(20),
        "private_key": pem.decode("ascii"),
        "client_email": DEV_SERVICE_ACCOUNT_EMAIL,
        "client_id": str(10**20 + secrets.randbelow(9 * 10**20)),
        "auth_uri": "https://oauth2.dev.invalid/auth",
        "token_uri": DEV_TOKEN_URI,
        "universe_domain": "googleapis.com",
    }


def ensure_dev_service_account(path: Path) -> bool:
    """Write a throw-away service-account key to `path` (0600) unless a file is there already.
    Returns whether it was created now. Published with a hard link, so a concurrent start never
    reads a half-written file and never overwrites one."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(_service_account_info(), handle, indent=2)
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False  # another process made one first: theirs is used
    finally:
        temporary.unlink(missing_ok=True)
    return True


def with_google(google: GoogleSettings, is_dev: bool) -> GoogleSettings:
    """Dev with an issuer id but no service-account file yet: generate one and read it back."""
    if not is_dev or not google.issuer_id or google.service_account is not None:
        return google
    ensure_dev_service_account(google.service_account_file)
    account, problem = read_service_account(google.service_account_file, allow_http=True)
    if problem:
        raise ConfigError([problem])
    return replace(google, service_account=account)


def with_secrets(settings: Settings) -> tuple[Settings, dict[str, Any] | None, bool]:
    """Fill missing dev secrets from the dev-secrets file (created on first start), and in dev the
    Google service-account key when none is there yet. Returns (settings, dev secrets or None,
    dev-secrets file created now)."""
    dev: dict[str, Any] | None = None
    created = False
    api_keys, ledger_secret = settings.api_keys, settings.ledger_secret
    if settings.is_dev and (not api_keys or not ledger_secret):
        dev, created = load_or_create(settings.certs_dir)
        if not api_keys:
            api_keys = {key: role for role, key in dev["api_keys"].items()}
        if not ledger_secret:
            ledger_secret = dev["ledger_secret"]
    link_secret = settings.link_secret or derive_link_secret(ledger_secret)
    session_secret = settings.session_secret or derive_session_secret(ledger_secret)
    # the enrolment webhook is signed like ledger posts: with the ledger secret unless it has its own
    enroll_secret = settings.enroll_webhook_secret or ledger_secret
    google = with_google(settings.google, settings.is_dev)
    settings = replace(
        settings,
        api_keys=api_keys,
        ledger_secret=ledger_secret,
        link_secret=link_secret,
        session_secret=session_secret,
        enroll_webhook_secret=enroll_secret,
        google=google,
    )
    return settings, dev, created
