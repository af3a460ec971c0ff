"""Telling the apps apart at registration, and what their tokens and push-service URLs may be
(push/clients.py), in the order of facts/android-wallet-apps.md §7."""

from __future__ import annotations

import pytest

from push import clients

FCM = "dGVzdC1kZXZpY2U6APA91bH" + "x" * 140  # <instance id>:APA91b… as FCM issues them
HMS = "0866" + "A1b2" * 30
APNS = "ab" * 32


@pytest.mark.parametrize(
    ("scheme", "pass_client", "attido", "expected"),
    [
        ("ApplePass", None, False, clients.APPLE),
        ("WalletUnionHMSPass", None, False, clients.WALLETUNION_HMS),
        ("WalletUnionPass", None, False, clients.WALLETUNION_FCM),
        ("AndroidPass", None, False, clients.WALLETPASSES),
        ("TelegramPass", None, False, clients.PASSHUB),
        ("ApplePass", "Passes", False, clients.PASS2U),
        ("ApplePass", " Passes ", False, clients.PASS2U),
        # the defunct Passworks Wallet has no relay left: kept as Apple's, like any unmarked ApplePass
        ("ApplePass", "Passworks", False, clients.APPLE),
        ("ApplePass", "Something", False, clients.APPLE),
        # the marker only means something beside ApplePass
        ("WalletUnionPass", "Passes", False, clients.WALLETUNION_FCM),
        # PassWallet's path decides first, whatever known word comes with it (Wallet Passes' fallback sends AttidoPass)
        ("AttidoPass", None, True, clients.PASSWALLET),
        ("ApplePass", None, True, clients.PASSWALLET),
        # AttidoPass registers only on its own path; unknown words and case variants are nobody's
        ("AttidoPass", None, False, None),
        ("FooPass", None, False, None),
        ("FooPass", None, True, None),
        ("applepass", None, False, None),
        ("", None, False, None),
    ],
)
def test_classify_in_the_facts_order(scheme: str, pass_client: str | None, attido: bool, expected: str | None) -> None:
    assert clients.classify(scheme, pass_client, attido) == expected


def test_every_word_is_known_for_fetch_and_unregister_and_no_other() -> None:
    for word in ("ApplePass", "WalletUnionPass", "WalletUnionHMSPass", "AndroidPass", "TelegramPass", "AttidoPass"):
        assert clients.is_known_word(word)
    assert not clients.is_known_word("Bearer")
    assert not clients.is_known_word("")


def test_every_client_but_apple_goes_through_a_relay() -> None:
    assert clients.CLIENTS[0] == clients.APPLE
    assert set(clients.RELAY_CLIENTS) == set(clients.CLIENTS) - {clients.APPLE}
    assert set(clients.SCHEME_WORDS.values()) | {clients.PASS2U} == set(clients.CLIENTS)


@pytest.mark.parametrize(
    ("client", "token", "ok"),
    [
        (clients.APPLE, APNS, True),
        (clients.APPLE, "AB" * 50, True),
        (clients.APPLE, FCM, False),  # an FCM token under ApplePass is nobody's APNs token
        (clients.APPLE, "ab" * 7, False),
        (clients.APPLE, APNS + "\n", False),
        (clients.WALLETUNION_FCM, FCM, True),
        (clients.WALLETUNION_HMS, HMS, True),
        (clients.WALLETPASSES, APNS, True),  # hex is within the alphabet
        (clients.PASS2U, "a+b/c=" * 4, True),
        (clients.WALLETUNION_FCM, "short", False),
        (clients.WALLETUNION_FCM, "has space " * 3, False),
        (clients.WALLETUNION_FCM, "x" * 4097, False),
        (clients.WALLETUNION_FCM, FCM + "\n", False),
        (clients.PASSHUB, "ünïcode-token-xxxxxxx", False),
    ],
)
def test_push_tokens_per_client(client: str, token: str, ok: bool) -> None:
    assert clients.push_token_ok(client, token) is ok


HOSTS = frozenset({"push.passwallet.net"})


@pytest.mark.parametrize(
    ("url", "allow_http", "ok"),
    [
        ("https://push.passwallet.net", False, True),
        ("https://push.passwallet.net/", False, True),
        ("https://PUSH.passwallet.net/v2", False, True),
        ("https://push.passwallet.net:443", False, True),
        ("http://push.passwallet.net", False, False),  # prod: https only
        ("http://push.passwallet.net", True, True),  # dev, for loopback fakes
        ("https://evil.example", False, False),
        ("https://push.passwallet.net.evil.example", False, False),
        ("https://user:pw@push.passwallet.net", False, False),
        ("https://push.passwallet.net@10.0.0.1", False, False),  # the host is 10.0.0.1
        ("https://10.0.0.1", False, False),
        ("https://push.passwallet.net?x=1", False, False),
        ("https://push.passwallet.net#f", False, False),
        ("https://push.passwallet.net:notaport", False, False),
        ("ftp://push.passwallet.net", True, False),
        ("push.passwallet.net", False, False),
        ("https://push.passwallet.net/" + "a" * 2100, False, False),
        ("", False, False),
    ],
)
def test_push_service_urls_off_the_allowlist_are_refused(url: str, allow_http: bool, ok: bool) -> None:
    assert clients.service_url_allowed(url, HOSTS, allow_http) is ok
