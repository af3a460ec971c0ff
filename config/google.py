"""Google Wallet settings: issuer, service account, REST root, save-JWT origins, callback keys and
the request rate. Read once by config/settings.py, which owns the problem list.

Facts: ../shared/facts/google-wallet.md §1.1 (JWT claims, origins), §2 (service account,
`token_uri`, rate limit), §3 (callback keys URL, sender id).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final
from urllib.parse import urlsplit

from google.auth.crypt import RSASigner

API_URL: Final = "https://walletobjects.googleapis.com"
# facts §3: Tink's PUBLIC_KEY_URL; some newer doc variants name https://wallet.google.com/gp/m/issuer/keys
KEYS_URL: Final = "https://pay.google.com/gp/m/issuer/keys"
# facts §3: real recorded callbacks verify only with this one (not "GoogleWalletPasses")
SENDER_ID: Final = "GooglePayPasses"
# facts §2: "rate limited to 20 requests per second" (UNCONFIRMED-secondary quote of Google's FAQ)
RATE: Final = 20.0
SERVICE_ACCOUNT_FILE: Final = "google-service-account.json"
# The issuer id dev uses when none is configured: digits like a real one (they start 3388000000),
# never a real issuer's, so nothing signed in dev is accepted by Google.
DEV_ISSUER_ID: Final = "3388000000000000000"

_ISSUER_RE = re.compile(r"[0-9]{1,20}")
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# the sender id goes into the signed bytes of a callback: visible ASCII
_SENDER_RE = re.compile(r"[\x21-\x7e]{1,100}")
_RATE_RE = re.compile(r"[0-9]{1,6}(\.[0-9]{1,3})?")
_MAX_FILE_BYTES = 64 * 1024
_MAX_RATE = 10_000.0

Get = Callable[[str, str], str]


@dataclass(frozen=True)
class ServiceAccount:
    """A validated service-account key file. The parsed JSON and the signer hold the private key:
    neither is in the repr, nor compared."""

    path: Path
    client_email: str
    token_uri: str
    info: Mapping[str, Any] = field(repr=False, compare=False)
    signer: RSASigner = field(repr=False, compare=False)

    @property
    def key_id(self) -> str | None:
        key_id = self.info.get("private_key_id")
        return key_id if isinstance(key_id, str) and key_id else None


@dataclass(frozen=True)
class GoogleSettings:
    issuer_id: str = ""  # "" = Google Wallet off
    service_account_file: Path = Path("certs") / SERVICE_ACCOUNT_FILE
    service_account: ServiceAccount | None = None  # read and checked at load
    api_url: str = API_URL  # Wallet REST root, no trailing slash
    origins: tuple[str, ...] = ("http://127.0.0.1:8000",)  # written into save JWTs
    keys_url: str = KEYS_URL  # callback root signing keys
    sender_id: str = SENDER_ID  # callback sender id
    rate: float = RATE  # Wallet REST requests per second, all processes' worth
    # http:// API, keys and token URLs: dev only, for loopback fakes
    allow_http: bool = False

    @property
    def enabled(self) -> bool:
        return bool(self.issuer_id) and self.service_account is not None


def _url_ok(url: str, allow_http: bool) -> bool:
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a port that is not a number
    except ValueError:
        return False
    schemes = ("https", "http") if allow_http else ("https",)
    return (
        parts.scheme in schemes
        and bool(parts.hostname)
        and parts.username is None
        and not parts.query
        and not parts.fragment
    )


def origin_of(url: str) -> str | None:
    """`scheme://host[:port]` of an http(s) URL, lower-cased, or None."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username is not None:
        return None
    host = parts.hostname
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None and port != default else "")


def parse_origins(text: str, problems: list[str]) -> tuple[str, ...]:
    """Comma-separated `scheme://host[:port]` origins (a trailing `/` is dropped), de-duplicated in order."""
    name = "WALLET_GOOGLE_ORIGINS"
    origins: list[str] = []
    bad: list[str] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        origin = origin_of(item)
        path = urlsplit(item).path if origin else ""
        if origin is None or path not in ("", "/") or "?" in item or "#" in item:
            bad.append(item)
        elif origin not in origins:
            origins.append(origin)
    if bad:
        problems.append(f"{name} takes origins only (scheme://host[:port]), comma-separated (not {', '.join(bad)})")
    elif not origins:
        problems.append(f"{name} must name at least one origin")
    return tuple(origins)


def read_service_account(path: Path, allow_http: bool) -> tuple[ServiceAccount | None, str | None]:
    """The service account in `path`, or (None, a problem naming the file). The problem never quotes
    the file's content."""
    name = f"WALLET_GOOGLE_SERVICE_ACCOUNT ({path})"
    try:
        with path.open("rb") as handle:
            raw = handle.read(_MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return None, f"{name} does not exist"
    except OSError as exc:
        return None, f"{name} cannot be read ({exc.strerror or type(exc).__name__})"
    if len(raw) > _MAX_FILE_BYTES:
        return None, f"{name} is larger than a service-account key file ({_MAX_FILE_BYTES // 1024} KiB)"
    try:
        info = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None, f"{name} is not a JSON file"
    if not isinstance(info, dict):
        return None, f"{name} is not a JSON object"
    if info.get("type") != "service_account":
        return None, f'{name} is not a service-account key ("type" must be "service_account")'
    email = info.get("client_email")
    if not isinstance(email, str) or not _EMAIL_RE.fullmatch(email):
        return None, f"{name} has no client_email"
    token_uri = info.get("token_uri")
    if not isinstance(token_uri, str) or not _url_ok(token_uri, allow_http):
        rule = "an http(s) URL (http is for dev only)" if allow_http else "an https URL"
        return None, f"{name} must have a token_uri that is {rule}"
    key = info.get("private_key")
    if not isinstance(key, str) or "-----BEGIN" not in key:
        return None, f"{name} has no private_key in PEM form"
    key_id = info.get("private_key_id")
    if key_id is not None and not isinstance(key_id, str):
        return None, f"{name} has a private_key_id that is not a string"
    try:
        signer = RSASigner.from_service_account_info(info)
        signer.sign(b"wallet-service: can this key sign?")  # an EC or broken key fails here, not at the first save
    except Exception:  # whatever the key parser raises: the message could quote the key, so none is kept
        return None, f"{name} has a private_key that is not a usable RSA private key"
    account = ServiceAccount(
        path=path,
        client_email=email,
        token_uri=token_uri,
        info=MappingProxyType(info),
        signer=signer,
    )
    return account, None


def _rate(text: str, problems: list[str]) -> float:
    value = float(text) if _RATE_RE.fullmatch(text) else 0.0
    if not 0 < value <= _MAX_RATE:
        problems.append(f"WALLET_GOOGLE_RATE must be a number of requests per second above 0, at most {_MAX_RATE:g}")
        return RATE
    return value


def load_google_settings(
    get: Get, is_dev: bool, certs_dir: Path, public_url: str, problems: list[str]
) -> GoogleSettings:
    """GoogleSettings from the variables `get` reads; each unusable one adds a problem naming it.

    Without WALLET_GOOGLE_ISSUER_ID prod runs with Google Wallet off (no problem) and dev takes
    DEV_ISSUER_ID. With an issuer id the service-account file is read and checked now: a missing
    or broken one is a problem (the service refuses to start), except that dev leaves a missing
    file at the default path to config.dev_secrets, which generates one."""
    issuer_id = get("WALLET_GOOGLE_ISSUER_ID", "").strip()
    if issuer_id and not (issuer_id.isascii() and _ISSUER_RE.fullmatch(issuer_id)):
        problems.append("WALLET_GOOGLE_ISSUER_ID must be the issuer id's digits (Google Pay & Wallet Console)")
        issuer_id = ""
    elif not issuer_id and is_dev:
        issuer_id = DEV_ISSUER_ID

    default_file = certs_dir / SERVICE_ACCOUNT_FILE
    named = get("WALLET_GOOGLE_SERVICE_ACCOUNT", "").strip()
    service_account_file = Path(named) if named else default_file
    service_account: ServiceAccount | None = None
    if issuer_id:
        service_account, problem = read_service_account(service_account_file, is_dev)
        dev_generates = is_dev and not named and not service_account_file.exists()
        if problem and not dev_generates:
            problems.append(problem)

    api_url = (get("WALLET_GOOGLE_API_URL", "") or API_URL).rstrip("/")
    if not _url_ok(api_url, is_dev):
        rule = "an http(s) URL (http is for dev only)" if is_dev else "an https URL"
        problems.append(f"WALLET_GOOGLE_API_URL must be {rule} without credentials, query or fragment")
        api_url = API_URL

    origins_text = get("WALLET_GOOGLE_ORIGINS", "").strip()
    if origins_text:
        origins = parse_origins(origins_text, problems)
    else:
        default_origin = origin_of(public_url)
        # an unusable WALLET_PUBLIC_URL is already a problem of its own
        origins = (default_origin,) if default_origin else ()

    keys_url = get("WALLET_GOOGLE_KEYS_URL", "") or KEYS_URL
    if not _url_ok(keys_url, is_dev):
        rule = "an http(s) URL (http is for dev only)" if is_dev else "an https URL"
        problems.append(f"WALLET_GOOGLE_KEYS_URL must be {rule} without credentials, query or fragment")
        keys_url = KEYS_URL

    sender_id = get("WALLET_GOOGLE_SENDER_ID", "").strip() or SENDER_ID
    if not _SENDER_RE.fullmatch(sender_id):
        problems.append("WALLET_GOOGLE_SENDER_ID must be printable ASCII without spaces (at most 100 characters)")
        sender_id = SENDER_ID

    rate = _rate(get("WALLET_GOOGLE_RATE", "").strip() or f"{RATE:g}", problems)

    return GoogleSettings(
        issuer_id=issuer_id,
        service_account_file=service_account_file,
        service_account=service_account,
        api_url=api_url,
        origins=origins,
        keys_url=keys_url,
        sender_id=sender_id,
        rate=rate,
        allow_http=is_dev,
    )
