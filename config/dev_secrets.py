"""Dev-only generated secrets (API keys per role, ledger secret), kept in the git-ignored certs folder."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import replace
from pathlib import Path
from typing import Any

from config.settings import ROLES, Settings

FILE_NAME = "dev-secrets.json"


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


def with_secrets(settings: Settings) -> tuple[Settings, dict[str, Any] | None, bool]:
    """Fill missing dev secrets from the dev-secrets file (created on first start).
    Returns (settings, dev secrets or None, created now)."""
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
    settings = replace(settings, api_keys=api_keys, ledger_secret=ledger_secret, link_secret=link_secret)
    return settings, dev, created
