"""Google Wallet settings (config/google.py): defaults from the facts, prod off without an issuer id,
a broken service-account file refusing start by name, secrets kept out of the repr, dev's generated
key; and /readyz saying whether Google Wallet is on."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from config.dev_secrets import DEV_SERVICE_ACCOUNT_EMAIL, ensure_dev_service_account, with_secrets
from config.google import (
    API_URL,
    DEV_ISSUER_ID,
    KEYS_URL,
    SENDER_ID,
    SERVICE_ACCOUNT_FILE,
    GoogleSettings,
    load_google_settings,
    read_service_account,
)
from config.settings import ConfigError, load_settings
from config.startup import prepare
from tests.unit.readiness import readyz

ISSUER = "3388000000022141777"


def _pem(key: Any) -> str:
    data: bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return data.decode("ascii")


@pytest.fixture(scope="module")
def rsa_pem() -> str:
    return _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))


def account_info(pem: str, **changes: Any) -> dict[str, Any]:
    info: dict[str, Any] = {
        "type": "service_account",
        "project_id": "coffee",
        "private_key_id": "0123456789abcdef0123456789abcdef01234567",
        "private_key": pem,
        "client_email": "wallet@coffee.iam.gserviceaccount.com",
        "client_id": "123456789012345678901",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    info.update(changes)
    return {name: value for name, value in info.items() if value is not None}


def write_account(path: Path, pem: str, **changes: Any) -> Path:
    path.write_text(json.dumps(account_info(pem, **changes)), encoding="utf-8")
    return path


def load(env: dict[str, str], certs: Path, is_dev: bool = False, public_url: str = "https://wallet.example.com"):
    problems: list[str] = []
    google = load_google_settings(env.get, is_dev, certs, public_url, problems)
    return google, problems


def prod_env(certs: Path, **extra: str) -> dict[str, str]:
    return {
        "WALLET_ENV": "prod",
        "WALLET_PUBLIC_URL": "https://wallet.example.com",
        "WALLET_PASS_TYPE_ID": "pass.com.example.coffee",
        "WALLET_TEAM_ID": "ABCDE12345",
        "WALLET_API_KEYS": "issuer:" + "k" * 20,
        "WALLET_LEDGER_SECRET": "s" * 20,
        "WALLET_SESSION_SECRET": "c" * 40,
        "WALLET_CERTS_DIR": str(certs),
        **extra,
    }


# -- defaults and prod ------------------------------------------------------------------------


def test_prod_defaults_are_googles_and_google_is_off_without_an_issuer_id(tmp_path: Path):
    google, problems = load({}, tmp_path)
    assert problems == []
    assert google.issuer_id == "" and google.service_account is None and not google.enabled
    assert google.service_account_file == tmp_path / SERVICE_ACCOUNT_FILE == tmp_path / "google-service-account.json"
    assert google.api_url == API_URL == "https://walletobjects.googleapis.com"
    assert google.keys_url == KEYS_URL == "https://pay.google.com/gp/m/issuer/keys"
    assert google.sender_id == SENDER_ID == "GooglePayPasses"
    assert google.rate == 20.0
    assert google.origins == ("https://wallet.example.com",)  # WALLET_PUBLIC_URL's origin
    assert google.allow_http is False
    assert not GoogleSettings().enabled  # the Settings default is off


def test_prod_without_issuer_id_starts_with_google_off_even_with_a_broken_key_file(tmp_path: Path):
    (tmp_path / SERVICE_ACCOUNT_FILE).write_text("not json")
    settings = load_settings(prod_env(tmp_path), dotenv=None)  # no ConfigError
    assert not settings.google.enabled


def test_prod_with_issuer_id_and_a_good_key_is_on(tmp_path: Path, rsa_pem: str):
    write_account(tmp_path / SERVICE_ACCOUNT_FILE, rsa_pem)
    settings = load_settings(prod_env(tmp_path, WALLET_GOOGLE_ISSUER_ID=ISSUER), dotenv=None)
    google = settings.google
    assert google.enabled and google.issuer_id == ISSUER
    assert google.service_account is not None
    assert google.service_account.client_email == "wallet@coffee.iam.gserviceaccount.com"
    assert google.service_account.token_uri == "https://oauth2.googleapis.com/token"
    assert google.service_account.key_id == "0123456789abcdef0123456789abcdef01234567"
    assert google.service_account.info["project_id"] == "coffee"  # the parsed file is kept


def test_prod_with_issuer_id_and_no_key_file_refuses_naming_it(tmp_path: Path):
    with pytest.raises(ConfigError) as info:
        load_settings(prod_env(tmp_path, WALLET_GOOGLE_ISSUER_ID=ISSUER), dotenv=None)
    [problem] = info.value.problems
    assert "WALLET_GOOGLE_SERVICE_ACCOUNT" in problem and str(tmp_path / SERVICE_ACCOUNT_FILE) in problem
    assert "does not exist" in problem


def _broken_files(pem: str, ec_pem: str) -> dict[str, str]:
    def js(**changes: Any) -> str:
        return json.dumps(account_info(pem, **changes))

    return {
        "not json": "{nope",
        "not an object": "[1, 2]",
        "not utf-8": "\udcff",
        "wrong type": js(type="authorized_user"),
        "no client_email": js(client_email=None),
        "bad client_email": js(client_email="wallet"),
        "no token_uri": js(token_uri=None),
        "http token_uri": js(token_uri="http://oauth2.example.com/token"),
        "no private_key": js(private_key=None),
        "garbage private_key": js(private_key="-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
        "EC private_key": js(private_key=ec_pem),
        "numeric private_key_id": js(private_key_id=7),
    }


@pytest.mark.parametrize(
    "case",
    [
        "not json",
        "not an object",
        "not utf-8",
        "wrong type",
        "no client_email",
        "bad client_email",
        "no token_uri",
        "http token_uri",
        "no private_key",
        "garbage private_key",
        "EC private_key",
        "numeric private_key_id",
    ],
)
def test_broken_key_file_refuses_start_naming_the_file(tmp_path: Path, rsa_pem: str, case: str):
    ec_pem = _pem(ec.generate_private_key(ec.SECP256R1()))
    path = tmp_path / "sa.json"
    text = _broken_files(rsa_pem, ec_pem)[case]
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    env = prod_env(tmp_path, WALLET_GOOGLE_ISSUER_ID=ISSUER, WALLET_GOOGLE_SERVICE_ACCOUNT=str(path))
    with pytest.raises(ConfigError) as info:
        load_settings(env, dotenv=None)
    [problem] = info.value.problems
    assert problem.startswith(f"WALLET_GOOGLE_SERVICE_ACCOUNT ({path})")
    for secret in ("PRIVATE KEY", rsa_pem.splitlines()[1][:20], ec_pem.splitlines()[1][:20]):
        assert secret not in problem  # the file's content is never quoted


def test_oversized_or_unreadable_key_file_is_refused(tmp_path: Path):
    big = tmp_path / "big.json"
    big.write_text(" " * (65 * 1024))
    assert "larger than" in (read_service_account(big, allow_http=False)[1] or "")
    folder = tmp_path / "folder.json"
    folder.mkdir()
    assert "cannot be read" in (read_service_account(folder, allow_http=False)[1] or "")


def test_the_key_file_is_read_with_the_service_account_path_variable(tmp_path: Path, rsa_pem: str):
    path = write_account(tmp_path / "elsewhere.json", rsa_pem)
    google, problems = load({"WALLET_GOOGLE_ISSUER_ID": ISSUER, "WALLET_GOOGLE_SERVICE_ACCOUNT": str(path)}, tmp_path)
    assert problems == [] and google.enabled and google.service_account_file == path


@pytest.mark.parametrize("value", ["abc", "33880000000x", "-1", "1" * 21, "٣٣٨٨"])
def test_issuer_id_must_be_digits(tmp_path: Path, value: str):
    _, problems = load({"WALLET_GOOGLE_ISSUER_ID": value}, tmp_path)
    assert problems == ["WALLET_GOOGLE_ISSUER_ID must be the issuer id's digits (Google Pay & Wallet Console)"]


# -- URLs, origins, sender id, rate -----------------------------------------------------------


def test_http_api_url_is_refused_in_prod_and_taken_in_dev(tmp_path: Path):
    env = {"WALLET_GOOGLE_API_URL": "http://127.0.0.1:9999/"}
    _, problems = load(env, tmp_path)
    assert problems == ["WALLET_GOOGLE_API_URL must be an https URL without credentials, query or fragment"]
    google, problems = load(env, tmp_path, is_dev=True)
    assert problems == [] and google.api_url == "http://127.0.0.1:9999" and google.allow_http


@pytest.mark.parametrize(
    "url", ["ftp://wallet.example.com", "https://user:pw@wallet.example.com", "https://x.example?a=1", "https://"]
)
def test_unusable_api_and_keys_urls_are_refused(tmp_path: Path, url: str):
    _, problems = load({"WALLET_GOOGLE_API_URL": url, "WALLET_GOOGLE_KEYS_URL": url}, tmp_path, is_dev=True)
    assert [p.split()[0] for p in problems] == ["WALLET_GOOGLE_API_URL", "WALLET_GOOGLE_KEYS_URL"]
    for problem in problems:
        assert "pw" not in problem


def test_overrides_are_taken(tmp_path: Path):
    env = {
        "WALLET_GOOGLE_API_URL": "https://wallet-fake.example.com/root/",
        "WALLET_GOOGLE_KEYS_URL": "https://wallet.google.com/gp/m/issuer/keys",
        "WALLET_GOOGLE_SENDER_ID": "GoogleWalletPasses",
        "WALLET_GOOGLE_RATE": "7.5",
    }
    google, problems = load(env, tmp_path)
    assert problems == []
    assert google.api_url == "https://wallet-fake.example.com/root"
    assert google.keys_url == "https://wallet.google.com/gp/m/issuer/keys"
    assert google.sender_id == "GoogleWalletPasses"
    assert google.rate == 7.5


@pytest.mark.parametrize("value", ["0", "-1", "fast", "20/s", "10001", "1e3"])
def test_rate_must_be_a_positive_number_of_requests_per_second(tmp_path: Path, value: str):
    google, problems = load({"WALLET_GOOGLE_RATE": value}, tmp_path)
    assert len(problems) == 1 and problems[0].startswith("WALLET_GOOGLE_RATE must be")
    assert google.rate == 20.0


def test_sender_id_must_be_printable_without_spaces(tmp_path: Path):
    _, problems = load({"WALLET_GOOGLE_SENDER_ID": "Google Pay"}, tmp_path)
    assert problems and problems[0].startswith("WALLET_GOOGLE_SENDER_ID")


def test_origins_are_parsed_normalised_and_deduplicated(tmp_path: Path):
    text = " https://Wallet.Example.com/ , http://wallet.example.com:80,https://shop.example.com:8443,,https://wallet.example.com"
    google, problems = load({"WALLET_GOOGLE_ORIGINS": text}, tmp_path)
    assert problems == []
    assert google.origins == (
        "https://wallet.example.com",
        "http://wallet.example.com",
        "https://shop.example.com:8443",
    )


def test_default_origin_follows_the_public_url(tmp_path: Path):
    google, _ = load({}, tmp_path, is_dev=True, public_url="http://127.0.0.1:8000/base")
    assert google.origins == ("http://127.0.0.1:8000",)
    settings = load_settings(
        {"WALLET_PUBLIC_URL": "https://cards.example.com:8443/x", "WALLET_CERTS_DIR": str(tmp_path)}, dotenv=None
    )
    assert settings.google.origins == ("https://cards.example.com:8443",)


@pytest.mark.parametrize(
    "text", ["wallet.example.com", "https://wallet.example.com/page", "ftp://x.example", "https://a.example?x=1", " , "]
)
def test_origins_that_are_not_origins_are_refused(tmp_path: Path, text: str):
    _, problems = load({"WALLET_GOOGLE_ORIGINS": text}, tmp_path)
    assert len(problems) == 1 and problems[0].startswith("WALLET_GOOGLE_ORIGINS")


# -- secrets ----------------------------------------------------------------------------------


def test_repr_leaves_the_signing_key_out(tmp_path: Path, rsa_pem: str):
    write_account(tmp_path / SERVICE_ACCOUNT_FILE, rsa_pem)
    settings = load_settings(prod_env(tmp_path, WALLET_GOOGLE_ISSUER_ID=ISSUER), dotenv=None)
    assert settings.google.enabled
    key_line = rsa_pem.splitlines()[1]
    for text in (repr(settings), str(settings), repr(settings.google), repr(settings.google.service_account)):
        assert "PRIVATE KEY" not in text and key_line not in text and "private_key" not in text
        assert "wallet@coffee.iam.gserviceaccount.com" in text  # the e-mail is not a secret


# -- dev --------------------------------------------------------------------------------------


def test_dev_generates_a_usable_key_once_and_reuses_it(tmp_path: Path):
    settings = load_settings({"WALLET_CERTS_DIR": str(tmp_path)}, dotenv=None)
    assert settings.google.issuer_id == DEV_ISSUER_ID and not settings.google.enabled  # nothing generated at load
    assert not (tmp_path / SERVICE_ACCOUNT_FILE).exists()
    first = prepare(settings).settings.google
    path = tmp_path / SERVICE_ACCOUNT_FILE
    assert first.enabled and first.service_account is not None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    info = json.loads(path.read_text())
    assert info["type"] == "service_account" and info["client_email"] == DEV_SERVICE_ACCOUNT_EMAIL
    assert info["token_uri"].startswith("https://")
    assert first.service_account.client_email == DEV_SERVICE_ACCOUNT_EMAIL
    assert first.service_account.signer.sign(b"x")  # usable
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []

    again = prepare(load_settings({"WALLET_CERTS_DIR": str(tmp_path)}, dotenv=None)).settings.google
    assert again.service_account is not None
    assert again.service_account.info["private_key"] == info["private_key"]  # reused, not regenerated
    # once generated, a plain load finds it: dev runs with Google on
    assert load_settings({"WALLET_CERTS_DIR": str(tmp_path)}, dotenv=None).google.enabled


def test_dev_keeps_a_configured_issuer_id_and_generates_the_key(tmp_path: Path):
    settings = load_settings({"WALLET_CERTS_DIR": str(tmp_path), "WALLET_GOOGLE_ISSUER_ID": ISSUER}, dotenv=None)
    google = with_secrets(settings)[0].google
    assert google.issuer_id == ISSUER and google.enabled


def test_dev_refuses_a_broken_key_file_rather_than_replacing_it(tmp_path: Path):
    (tmp_path / SERVICE_ACCOUNT_FILE).write_text("{}")
    with pytest.raises(ConfigError) as info:
        load_settings({"WALLET_CERTS_DIR": str(tmp_path)}, dotenv=None)
    assert "WALLET_GOOGLE_SERVICE_ACCOUNT" in info.value.problems[0]
    assert (tmp_path / SERVICE_ACCOUNT_FILE).read_text() == "{}"


def test_dev_does_not_generate_a_key_at_a_path_named_by_the_operator(tmp_path: Path):
    named = tmp_path / "mine.json"
    with pytest.raises(ConfigError) as info:
        load_settings({"WALLET_CERTS_DIR": str(tmp_path), "WALLET_GOOGLE_SERVICE_ACCOUNT": str(named)}, dotenv=None)
    assert str(named) in info.value.problems[0] and "does not exist" in info.value.problems[0]
    assert not named.exists()


def test_dev_service_account_is_never_overwritten(tmp_path: Path):
    path = tmp_path / "sub" / SERVICE_ACCOUNT_FILE
    assert ensure_dev_service_account(path)
    before = path.read_bytes()
    assert not ensure_dev_service_account(path)
    assert path.read_bytes() == before


def test_dev_accepts_an_http_token_uri_for_a_loopback_fake(tmp_path: Path, rsa_pem: str):
    write_account(tmp_path / SERVICE_ACCOUNT_FILE, rsa_pem, token_uri="http://127.0.0.1:18765/token")
    google, problems = load({}, tmp_path, is_dev=True)
    assert problems == [] and google.enabled
    assert google.service_account is not None and google.service_account.token_uri == "http://127.0.0.1:18765/token"


# -- /readyz ----------------------------------------------------------------------------------


async def test_readyz_says_google_off_in_prod_without_issuer_and_stays_ready(tmp_path: Path):
    status, body = await readyz(load_settings(prod_env(tmp_path), dotenv=None))
    assert status == 200 and body["google"] == "off"


async def test_readyz_says_google_on_when_configured(tmp_path: Path):
    settings = prepare(load_settings({"WALLET_CERTS_DIR": str(tmp_path)}, dotenv=None)).settings
    status, body = await readyz(settings)
    assert status == 200 and body["google"] == "on"
