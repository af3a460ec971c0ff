"""Relay settings: where the Android pass apps' pushes go, with which keys, and which install
links the card page offers. Read once by config/settings.py, which owns the problem list.

Facts: ../shared/facts/android-wallet-apps.md §1-§5 (endpoints, keys), §8 (what is UNCONFIRMED).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final
from urllib.parse import urlsplit

from push.clients import PASS2U, PASSHUB, PASSWALLET, WALLETPASSES, WALLETUNION_FCM

# UNCONFIRMED (facts §8.1): the only known WalletUnion endpoint is from 2020 peer code.
WALLETUNION_URL: Final = "https://push.walletunion.com/send"
WALLETPASSES_URL: Final = "https://walletpasses.appspot.com/api/v1/push"
PASS2U_URL: Final = "https://api.passesalliance.com/v2/registrations/{passTypeIdentifier}/push"
PASSHUB_URL: Final = "https://api.passhub.io/v1/push"
PASSWALLET_HOST: Final = "push.passwallet.net"
PASS2U_PLACEHOLDER: Final = "{passTypeIdentifier}"
APP_LINK_PLACEHOLDER: Final = "{url}"

# RFC 9110 token: what a header name may be made of.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# A key goes into a header value: visible ASCII and inner spaces only (a newline would be refused
# by httpx at the first push, far from the variable that caused it).
_KEY = re.compile(r"[\x21-\x7e]+(?: [\x21-\x7e]+)*")
_HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
# An app link lands in an href on the card page: nothing that could end the attribute or the URL.
_LINK_UNSAFE = re.compile(r"[\s\"'<>\\`]")

Get = Callable[[str, str], str]


@dataclass(frozen=True)
class Relay:
    """One maker's relay: its endpoint and API key ("" = not configured)."""

    name: str  # the <APP> of WALLET_RELAY_<APP>_URL / _KEY
    url: str
    key: str = field(default="", repr=False)  # a secret, like the APNs key
    key_required: bool = True

    @property
    def url_env(self) -> str:
        return f"WALLET_RELAY_{self.name}_URL"

    @property
    def key_env(self) -> str:
        return f"WALLET_RELAY_{self.name}_KEY"


def _walletunion() -> Relay:
    return Relay("WALLETUNION", WALLETUNION_URL)


def _walletpasses() -> Relay:
    # the key only raises the rate limit (facts §2)
    return Relay("WALLETPASSES", WALLETPASSES_URL, key_required=False)


def _pass2u() -> Relay:
    return Relay("PASS2U", PASS2U_URL)


def _passhub() -> Relay:
    return Relay("PASSHUB", PASSHUB_URL)


@dataclass(frozen=True)
class RelaySettings:
    walletunion: Relay = field(default_factory=_walletunion)
    walletunion_key_header: str = "Authorization"
    walletpasses: Relay = field(default_factory=_walletpasses)
    pass2u: Relay = field(default_factory=_pass2u)
    passhub: Relay = field(default_factory=_passhub)
    # pushServiceUrl hosts PassWallet registrations may name (the URL is client input)
    passwallet_hosts: frozenset[str] = frozenset({PASSWALLET_HOST})
    # http:// relay and push-service URLs: dev only, for loopback fakes
    allow_http: bool = False
    # client name -> install-and-import link template overriding the card page's default
    app_links: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def keyed(self) -> tuple[Relay, ...]:
        return (self.walletunion, self.walletpasses, self.pass2u, self.passhub)

    def missing_keys(self) -> list[str]:
        """The variables of relays that need a key and have none (their pushes are dead-lettered)."""
        return [relay.key_env for relay in self.keyed if relay.key_required and not relay.key]


# <APP> of WALLET_APP_LINK_<APP> -> the client whose card-page link it overrides; WalletUnion's
# one link serves both of its builds, filed under the FCM one.
APP_LINK_CLIENTS: Final = {
    "WALLETUNION": WALLETUNION_FCM,
    "WALLETPASSES": WALLETPASSES,
    "PASS2U": PASS2U,
    "PASSWALLET": PASSWALLET,
    "PASSHUB": PASSHUB,
}


def _relay_url_ok(url: str, allow_http: bool) -> bool:
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a port that is not a number
    except ValueError:
        return False
    schemes = ("https", "http") if allow_http else ("https",)
    return parts.scheme in schemes and bool(parts.hostname) and parts.username is None and not parts.fragment


def _relay(get: Get, default: Relay, allow_http: bool, problems: list[str]) -> Relay:
    url = get(default.url_env, "") or default.url
    if not _relay_url_ok(url, allow_http):
        rule = "an http(s) URL (http is for dev only)" if allow_http else "an https URL"
        problems.append(f"{default.url_env} must be {rule} without credentials")
    elif default.name == "PASS2U" and PASS2U_PLACEHOLDER not in url:
        # the pass type goes in the path; without the placeholder every pass type would share one URL
        problems.append(f"{default.url_env} must keep {PASS2U_PLACEHOLDER} in its path")
    key = get(default.key_env, "").strip()
    if key and not _KEY.fullmatch(key):
        problems.append(f"{default.key_env} must be printable ASCII (it is sent in a header)")
        key = ""
    return Relay(default.name, url, key, default.key_required)


def _host_ok(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    labels = host.split(".")
    return len(host) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in labels)


def parse_hosts(text: str, problems: list[str]) -> frozenset[str]:
    name = "WALLET_RELAY_PASSWALLET_HOSTS"
    hosts = [item.strip().lower().rstrip(".") for item in text.split(",") if item.strip()]
    if not hosts:
        problems.append(f"{name} must name at least one host")
        return frozenset({PASSWALLET_HOST})
    bad = [host for host in hosts if not _host_ok(host)]
    if bad:
        # a port or scheme here would never match the host of a URL, silently refusing every push
        problems.append(f"{name} takes host names only, comma-separated (not {', '.join(bad)})")
    return frozenset(host for host in hosts if host not in bad)


# Android opens `intent:` and `market:` links in the app or its store page (WalletUnion's
# Chrome-only import and PassWallet's referrer form are such links, facts §1, §4).
APP_LINK_SCHEMES: Final = frozenset({"https", "intent", "market"})


def app_link_ok(template: str) -> bool:
    """An https (or Android intent/market) URL once `{url}` is filled in, with no other braces
    (it is filled by substitution) and nothing that could leave the href it goes into."""
    if _LINK_UNSAFE.search(template):
        return False
    sample = template.replace(APP_LINK_PLACEHOLDER, "x")
    if "{" in sample or "}" in sample:
        return False
    try:
        parts = urlsplit(sample)
    except ValueError:
        return False
    if parts.scheme != "https":
        return parts.scheme in APP_LINK_SCHEMES and parts.username is None
    return bool(parts.hostname) and parts.username is None


def _app_links(get: Get, problems: list[str]) -> Mapping[str, str]:
    links: dict[str, str] = {}
    for app, client in APP_LINK_CLIENTS.items():
        name = f"WALLET_APP_LINK_{app}"
        template = get(name, "").strip()
        if not template:
            continue  # the card page's shipped default
        if app_link_ok(template):
            links[client] = template
        else:
            problems.append(
                f"{name} must be an https, intent: or market: URL; {APP_LINK_PLACEHOLDER} may stand for the pass link"
            )
    return MappingProxyType(links)


def load_relay_settings(get: Get, is_dev: bool, problems: list[str]) -> RelaySettings:
    """RelaySettings from the variables `get` reads; each unusable one adds a problem naming it."""
    header = get("WALLET_RELAY_WALLETUNION_KEY_HEADER", "") or "Authorization"
    if not _TOKEN.fullmatch(header):
        problems.append("WALLET_RELAY_WALLETUNION_KEY_HEADER must be a header name (letters, digits, - and the like)")
        header = "Authorization"
    return RelaySettings(
        walletunion=_relay(get, _walletunion(), is_dev, problems),
        walletunion_key_header=header,
        walletpasses=_relay(get, _walletpasses(), is_dev, problems),
        pass2u=_relay(get, _pass2u(), is_dev, problems),
        passhub=_relay(get, _passhub(), is_dev, problems),
        passwallet_hosts=parse_hosts(get("WALLET_RELAY_PASSWALLET_HOSTS", "") or PASSWALLET_HOST, problems),
        allow_http=is_dev,
        app_links=_app_links(get, problems),
    )
