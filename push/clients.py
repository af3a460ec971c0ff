"""Which app holds a registered pass, told from its registration request; and what its push
token and push-service URL must look like. Pure: the web service asks, the worker routes by
the answer it stored.

Facts: ../shared/facts/android-wallet-apps.md §7 (order of the checks, and why User-Agent is
only a cross-check: WalletUnion sends `Passbook/1.0`, PassAndroid poses as an iPhone).
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlsplit

APPLE: Final = "apple"
WALLETUNION_FCM: Final = "walletunion_fcm"
WALLETUNION_HMS: Final = "walletunion_hms"
WALLETPASSES: Final = "walletpasses"
PASS2U: Final = "pass2u"
PASSWALLET: Final = "passwallet"
PASSHUB: Final = "passhub"
# In the facts' §7 order; every client but Apple is pushed through its maker's relay.
CLIENTS: Final = (APPLE, WALLETUNION_FCM, WALLETUNION_HMS, WALLETPASSES, PASS2U, PASSWALLET, PASSHUB)
RELAY_CLIENTS: Final = CLIENTS[1:]

# The Authorization scheme word of each app. PassWallet's word is documented for registration
# only; on the other calls any known word with the right token is accepted (facts §7).
SCHEME_WORDS: Final = {
    "ApplePass": APPLE,
    "WalletUnionPass": WALLETUNION_FCM,
    "WalletUnionHMSPass": WALLETUNION_HMS,
    "AndroidPass": WALLETPASSES,
    "TelegramPass": PASSHUB,
    "AttidoPass": PASSWALLET,
}
# Pass2U keeps `ApplePass` and says who it is in X-Pass-Client (facts §3). `Passworks` (the
# defunct Passworks Wallet, deprecated in favour of Wallet Passes) has no relay to push
# through: it is kept as `apple` like any unmarked ApplePass, as peers do.
_PASS_CLIENT_HEADER: Final = {"Passes": PASS2U}

# APNs device tokens are hex (64 characters today; Apple reserves the right to lengthen them).
APNS_TOKEN_PATTERN: Final = "^[0-9A-Fa-f]{16,512}$"
# FCM registration tokens (`<id>:APA91b…`) and HMS tokens use letters, digits and `_ - :`;
# the other relays' tokens are FCM tokens or opaque; base64's `+ / =` and `.` are admitted so
# that an app's token format change does not lock its users out. Lengths seen are 100–200.
# Every APNs token matches this too: it is the documented shape of any pushToken.
RELAY_TOKEN_PATTERN: Final = "^[A-Za-z0-9_:.+/=-]{16,4096}$"
# matched with fullmatch (`$` alone lets a trailing newline through)
_APNS_TOKEN = re.compile(APNS_TOKEN_PATTERN.strip("^$"))
_RELAY_TOKEN = re.compile(RELAY_TOKEN_PATTERN.strip("^$"))


def classify(scheme: str, pass_client: str | None, attido_path: bool) -> str | None:
    """The client of a registration request, or None for a word no app sends (then 401).
    Checked in the facts' §7 order: the `registrations_attido` path first, whatever the word."""
    if attido_path:
        return PASSWALLET if scheme in SCHEME_WORDS else None
    client = SCHEME_WORDS.get(scheme)
    if client == APPLE and pass_client is not None:
        return _PASS_CLIENT_HEADER.get(pass_client.strip(), APPLE)
    if client == PASSWALLET:
        return None  # AttidoPass registers only on its own path
    return client


def is_known_word(scheme: str) -> bool:
    """Fetch and unregister take any app's word (with the right token); the client stays as registered."""
    return scheme in SCHEME_WORDS


def push_token_ok(client: str, token: str) -> bool:
    pattern = _APNS_TOKEN if client == APPLE else _RELAY_TOKEN
    return pattern.fullmatch(token) is not None


def push_token_rule(client: str) -> str:
    """What `push_token_ok` wants, for the 400 message."""
    if client == APPLE:
        return "a hex APNs device token is required"
    return "a push token of 16-4096 letters, digits or _ - : . + / = is required"


def service_url_allowed(url: str, hosts: frozenset[str], allow_http: bool = False) -> bool:
    """PassWallet's `pushServiceUrl` is chosen by the phone: only https (http in dev, for loopback
    fakes) to a host the operator listed, with no credentials and no query, is ever called."""
    if len(url) > 2048:
        return False
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number
    except ValueError:
        return False
    del port
    schemes = ("https", "http") if allow_http else ("https",)
    return (
        parts.scheme in schemes
        and (parts.hostname or "").lower() in hosts
        and parts.username is None
        and parts.password is None
        and not parts.query
        and not parts.fragment
    )
