"""Settings validation and signed links."""

from __future__ import annotations

from pathlib import Path

import pytest

from cards.links import link_valid, sign_link
from config.settings import ConfigError, load_settings, read_dotenv


def test_defaults_in_dev():
    s = load_settings({}, dotenv=None)
    assert (s.env, s.host, s.port, s.database_url, s.push_dry_run) == (
        "dev",
        "127.0.0.1",
        8000,
        "sqlite:///var/wallet.db",
        True,
    )
    assert s.web_service_url == "http://127.0.0.1:8000/passkit"


def test_prod_names_every_missing_item():
    with pytest.raises(ConfigError) as info:
        load_settings({"WALLET_ENV": "prod"}, dotenv=None)
    text = "\n".join(info.value.problems)
    for name in ("WALLET_PASS_TYPE_ID", "WALLET_TEAM_ID", "WALLET_API_KEYS", "WALLET_LEDGER_SECRET", "https"):
        assert name in text


@pytest.mark.parametrize(
    "env, fragment",
    [
        ({"PORT": "99999"}, "PORT"),
        ({"WALLET_DATABASE_URL": "mysql://x"}, "WALLET_DATABASE_URL"),
        ({"WALLET_API_KEYS": "root:abcdefghijklmnopq"}, "role"),
        ({"WALLET_API_KEYS": "issuer:short"}, "16"),
        ({"WALLET_PUSH_DRY_RUN": "maybe"}, "WALLET_PUSH_DRY_RUN"),
        ({"WALLET_TEAM_ID": "lower"}, "WALLET_TEAM_ID"),
        ({"WALLET_APNS_ENDPOINT": "http://127.0.0.1:1"}, "https"),
    ],
)
def test_bad_values(env, fragment):
    with pytest.raises(ConfigError) as info:
        load_settings(env, dotenv=None)
    assert fragment in str(info.value)


def test_api_keys_and_dotenv(tmp_path: Path):
    dotenv = tmp_path / ".env"
    dotenv.write_text('# comment\nexport WALLET_API_KEYS="issuer:aaaaaaaaaaaaaaaa,admin:bbbbbbbbbbbbbbbb"\nPORT=9001\n')
    assert read_dotenv(dotenv)["PORT"] == "9001"
    s = load_settings({"PORT": "9002"}, dotenv=dotenv)
    assert s.port == 9002  # the environment wins over .env
    assert s.api_keys == {"aaaaaaaaaaaaaaaa": "issuer", "bbbbbbbbbbbbbbbb": "admin"}


def test_links():
    query = sign_link("k" * 32, "pkpass", "SER", 2000)
    params = dict(p.split("=") for p in query.split("&"))
    assert link_valid("k" * 32, "pkpass", "SER", params["exp"], params["sig"], now=1999)
    assert not link_valid("k" * 32, "pkpass", "SER", params["exp"], params["sig"], now=2001)  # expired
    assert not link_valid("k" * 32, "page", "SER", params["exp"], params["sig"], now=1999)  # other purpose
    assert not link_valid("k" * 32, "pkpass", "OTHER", params["exp"], params["sig"], now=1999)
    assert not link_valid("x" * 32, "pkpass", "SER", params["exp"], params["sig"], now=1999)
    assert not link_valid("k" * 32, "pkpass", "SER", "3000", params["sig"], now=1999)  # extended expiry
    assert not link_valid("k" * 32, "pkpass", "SER", None, None, now=0)
