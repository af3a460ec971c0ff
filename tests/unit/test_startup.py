"""Start-up preparation: dev creates its PKI and secrets once; prod refuses, naming each problem."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from config.settings import ConfigError, load_settings
from config.startup import prepare


def test_dev_creates_pki_and_secrets_once(tmp_path: Path):
    settings = load_settings({"WALLET_CERTS_DIR": str(tmp_path)}, dotenv=None)
    first = prepare(settings)
    assert first.created_pki and first.created_secrets
    for name in ("ca.pem", "wwdr.pem", "pass.pem", "pass.key", "dev-secrets.json"):
        assert (tmp_path / name).is_file()
    assert stat.S_IMODE((tmp_path / "dev-secrets.json").stat().st_mode) == 0o600
    assert set(first.settings.api_keys.values()) == {"issuer", "marketing", "admin"}
    assert first.settings.ledger_secret and first.settings.link_secret != first.settings.ledger_secret
    again = prepare(settings)
    assert not again.created_pki and not again.created_secrets
    assert again.settings.api_keys == first.settings.api_keys
    assert json.loads((tmp_path / "dev-secrets.json").read_text())["ledger_secret"] == again.settings.ledger_secret
    assert again.certs.expiry["pass"] > 300


def prod_env(certs: Path) -> dict[str, str]:
    return {
        "WALLET_ENV": "prod",
        "WALLET_PUBLIC_URL": "https://wallet.example.com",
        "WALLET_PASS_TYPE_ID": "pass.com.example.coffee",
        "WALLET_TEAM_ID": "ABCDE12345",
        "WALLET_API_KEYS": "issuer:" + "k" * 20,
        "WALLET_LEDGER_SECRET": "s" * 20,
        "WALLET_SESSION_SECRET": "c" * 40,
        "WALLET_CERTS_DIR": str(certs),
    }


def test_prod_refuses_without_certificates(tmp_path: Path):
    with pytest.raises(ConfigError) as info:
        prepare(load_settings(prod_env(tmp_path), dotenv=None))
    text = "\n".join(info.value.problems)
    assert "pass.pem" in text and "pass.key" in text and "wwdr.pem" in text
    assert not (tmp_path / "ca.pem").exists()  # prod never makes a PKI of its own


def test_prod_refuses_certificates_of_another_pass_type(tmp_path: Path):
    prepare(load_settings({"WALLET_CERTS_DIR": str(tmp_path)}, dotenv=None))  # a dev PKI for another id
    with pytest.raises(ConfigError) as info:
        prepare(load_settings(prod_env(tmp_path), dotenv=None))
    assert any("WALLET_PASS_TYPE_ID" in p for p in info.value.problems)
    assert any("WALLET_TEAM_ID" in p for p in info.value.problems)
