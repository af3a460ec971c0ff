"""Relay settings (config/relays.py): defaults from the facts, overrides, and each refusal naming its variable."""

from __future__ import annotations

import pytest

from config.relays import (
    PASS2U_URL,
    PASSHUB_URL,
    WALLETPASSES_URL,
    WALLETUNION_URL,
    RelaySettings,
    load_relay_settings,
)
from config.settings import ConfigError, load_settings
from push.clients import PASS2U, PASSWALLET, WALLETPASSES, WALLETUNION_FCM

KEYS = {
    "WALLET_RELAY_WALLETUNION_KEY": "wu-secret-key-1234",
    "WALLET_RELAY_WALLETPASSES_KEY": "wp-secret-key-1234",
    "WALLET_RELAY_PASS2U_KEY": "p2u-secret-key-1234",
    "WALLET_RELAY_PASSHUB_KEY": "ph-secret-key-1234",
}


def load(env: dict[str, str], is_dev: bool = False) -> tuple[RelaySettings, list[str]]:
    problems: list[str] = []
    return load_relay_settings(env.get, is_dev, problems), problems


def test_defaults_are_the_makers_endpoints_with_no_keys():
    relays, problems = load({})
    assert problems == []
    assert relays.walletunion.url == WALLETUNION_URL == "https://push.walletunion.com/send"
    assert relays.walletpasses.url == WALLETPASSES_URL == "https://walletpasses.appspot.com/api/v1/push"
    assert relays.pass2u.url == PASS2U_URL
    assert "{passTypeIdentifier}" in relays.pass2u.url
    assert relays.passhub.url == PASSHUB_URL == "https://api.passhub.io/v1/push"
    assert relays.walletunion_key_header == "Authorization"
    assert relays.passwallet_hosts == frozenset({"push.passwallet.net"})
    assert relays.allow_http is False
    assert dict(relays.app_links) == {}
    assert all(relay.key == "" for relay in relays.keyed)
    assert RelaySettings() == relays  # the Settings default is the same as loading nothing


def test_overrides_are_taken():
    env = {
        **KEYS,
        "WALLET_RELAY_WALLETUNION_URL": "https://relay.example.com/wu",
        "WALLET_RELAY_WALLETPASSES_URL": "https://relay.example.com/wp",
        "WALLET_RELAY_PASS2U_URL": "https://relay.example.com/p2u/{passTypeIdentifier}/push",
        "WALLET_RELAY_PASSHUB_URL": "https://relay.example.com/ph",
        "WALLET_RELAY_WALLETUNION_KEY_HEADER": "X-Api-Key",
        "WALLET_APP_LINK_WALLETUNION": "https://walletunion.example/import?u={url}",
        "WALLET_APP_LINK_PASSWALLET": "https://passwallet.example/?link={url}",
    }
    relays, problems = load(env)
    assert problems == []
    assert [r.url for r in relays.keyed] == [
        "https://relay.example.com/wu",
        "https://relay.example.com/wp",
        "https://relay.example.com/p2u/{passTypeIdentifier}/push",
        "https://relay.example.com/ph",
    ]
    assert [r.key for r in relays.keyed] == list(KEYS.values())
    assert relays.walletunion_key_header == "X-Api-Key"
    assert dict(relays.app_links) == {
        WALLETUNION_FCM: "https://walletunion.example/import?u={url}",
        PASSWALLET: "https://passwallet.example/?link={url}",
    }
    assert relays.missing_keys() == []


def test_http_is_refused_in_prod_naming_the_variable():
    _, problems = load({"WALLET_RELAY_PASSHUB_URL": "http://127.0.0.1:9000/v1/push"})
    assert len(problems) == 1 and "WALLET_RELAY_PASSHUB_URL" in problems[0] and "https" in problems[0]


def test_http_is_allowed_in_dev_for_loopback_fakes():
    relays, problems = load({"WALLET_RELAY_PASSHUB_URL": "http://127.0.0.1:9000/v1/push"}, is_dev=True)
    assert problems == []
    assert relays.passhub.url == "http://127.0.0.1:9000/v1/push"
    assert relays.allow_http is True


@pytest.mark.parametrize(
    "url", ["ftp://relay.example.com/x", "relay.example.com/x", "https://", "https://u:p@relay.example.com/x"]
)
def test_other_bad_relay_urls_are_refused(url: str):
    _, problems = load({"WALLET_RELAY_WALLETUNION_URL": url}, is_dev=True)
    assert len(problems) == 1 and "WALLET_RELAY_WALLETUNION_URL" in problems[0]


def test_pass2u_url_must_keep_its_placeholder():
    _, problems = load({"WALLET_RELAY_PASS2U_URL": "https://api.passesalliance.com/v2/registrations/pass.x/push"})
    assert len(problems) == 1
    assert "WALLET_RELAY_PASS2U_URL" in problems[0] and "{passTypeIdentifier}" in problems[0]


def test_passwallet_hosts_are_parsed_and_lower_cased():
    relays, problems = load({"WALLET_RELAY_PASSWALLET_HOSTS": " Push.PassWallet.net , 127.0.0.1,,push2.example.COM. "})
    assert problems == []
    assert relays.passwallet_hosts == frozenset({"push.passwallet.net", "127.0.0.1", "push2.example.com"})


@pytest.mark.parametrize("text", ["push.passwallet.net:443", "https://push.passwallet.net", "bad host", " , "])
def test_bad_passwallet_hosts_are_refused(text: str):
    _, problems = load({"WALLET_RELAY_PASSWALLET_HOSTS": text})
    assert len(problems) == 1 and "WALLET_RELAY_PASSWALLET_HOSTS" in problems[0]


@pytest.mark.parametrize("header", ["X Api Key", "X-Key:", "Ключ", "a\nb"])
def test_bad_key_header_is_refused(header: str):
    relays, problems = load({"WALLET_RELAY_WALLETUNION_KEY_HEADER": header})
    assert len(problems) == 1 and "WALLET_RELAY_WALLETUNION_KEY_HEADER" in problems[0]
    assert relays.walletunion_key_header == "Authorization"


def test_a_key_that_cannot_go_in_a_header_is_refused_without_echoing_it():
    _, problems = load({"WALLET_RELAY_PASS2U_KEY": "secret\nvalue"})
    assert len(problems) == 1 and "WALLET_RELAY_PASS2U_KEY" in problems[0]
    assert "secret" not in problems[0]


@pytest.mark.parametrize(
    "link",
    [
        "http://walletpass.io?u={url}",
        "javascript:alert(1)//{url}",
        "data:text/html,{url}",
        "/relative?u={url}",
        "{url}",
        "https://walletpass.io?u={link}",
        'https://walletpass.io?u={url}"onclick=x',
        "https://walletpass.io?u= {url}",
    ],
)
def test_bad_app_links_are_refused(link: str):
    relays, problems = load({"WALLET_APP_LINK_WALLETPASSES": link}, is_dev=True)
    assert len(problems) == 1 and "WALLET_APP_LINK_WALLETPASSES" in problems[0]
    assert WALLETPASSES not in relays.app_links


@pytest.mark.parametrize(
    "link",
    ["https://walletpass.io?u={url}", "market://details?id=a&referrer={url}", "intent://import?url={url}#Intent;end"],
)
def test_android_app_links_are_taken(link: str):
    relays, problems = load({"WALLET_APP_LINK_WALLETPASSES": link})
    assert problems == []
    assert relays.app_links == {WALLETPASSES: link}


def test_app_link_without_placeholder_is_kept_and_keyed_by_client():
    relays, problems = load({"WALLET_APP_LINK_PASS2U": "https://www.pass2u.net/"})
    assert problems == []
    assert dict(relays.app_links) == {PASS2U: "https://www.pass2u.net/"}


def test_missing_keys_names_the_required_ones_only():
    relays, _ = load({})
    # Wallet Passes' key is optional (it only raises the rate limit)
    assert relays.missing_keys() == [
        "WALLET_RELAY_WALLETUNION_KEY",
        "WALLET_RELAY_PASS2U_KEY",
        "WALLET_RELAY_PASSHUB_KEY",
    ]
    relays, _ = load({"WALLET_RELAY_PASS2U_KEY": "k" * 20})
    assert relays.missing_keys() == ["WALLET_RELAY_WALLETUNION_KEY", "WALLET_RELAY_PASSHUB_KEY"]


def test_keys_are_absent_from_repr():
    relays, _ = load(KEYS)
    settings = load_settings(KEYS, dotenv=None)
    for text in (repr(relays), str(relays), repr(settings), repr(relays.walletunion)):
        for key in KEYS.values():
            assert key not in text
    assert "push.walletunion.com" in repr(relays)  # the rest is still there to read


def test_settings_carry_the_relays_and_problems_reach_config_error():
    settings = load_settings({**KEYS, "WALLET_RELAY_PASSHUB_URL": "http://127.0.0.1:1/x"}, dotenv=None)
    assert settings.relays.passhub.url == "http://127.0.0.1:1/x" and settings.relays.allow_http is True
    assert settings.relays.passhub.key == KEYS["WALLET_RELAY_PASSHUB_KEY"]
    with pytest.raises(ConfigError) as info:
        load_settings({"WALLET_ENV": "prod", "WALLET_RELAY_PASSHUB_URL": "http://127.0.0.1:1/x"}, dotenv=None)
    assert any("WALLET_RELAY_PASSHUB_URL" in p for p in info.value.problems)
