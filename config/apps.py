"""Companion-app settings: FCM (HTTP v1) for Android alerts, the iOS app's APNs topic. Read once by
config/settings.py, which owns the problem list.

- WALLET_FCM_SERVICE_ACCOUNT: the Firebase project's service-account key file (JSON). Read and checked
  at load, so a missing or broken file stops the service at start rather than dead-lettering every
  alert later. Unset: Android alerts have no channel (the worker dead-letters them, visibly).
- WALLET_FCM_API_URL: FCM's root (https://fcm.googleapis.com); http is accepted in dev only, for a
  loopback fake.
- WALLET_APP_APNS_TOPIC: the iOS app's bundle id, the topic of its alert pushes. Unset: iOS alerts off.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

Get = Callable[..., str]

FCM_API_URL = "https://fcm.googleapis.com"
# a service-account key is about 2.3 KiB; anything far larger is not one
_MAX_FILE_BYTES = 64 * 1024
# Apple's bundle ids: reverse-DNS of letters, digits, hyphens and dots (the APNs topic of an app)
_BUNDLE_ID_RE = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
_BUNDLE_ID_MAX = 155


@dataclass(frozen=True)
class AppSettings:
    # the service-account key JSON of the app's Firebase project; None: Android alerts off
    fcm_service_account: Path | None = None
    fcm_api_url: str = FCM_API_URL
    # the iOS companion app's bundle id; None: iOS alerts off
    apns_topic: str | None = None

    @property
    def fcm_endpoint_base(self) -> str:
        """What FcmChannel takes as the root of `/<project>/messages:send`."""
        return f"{self.fcm_api_url}/v1/projects"


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
        and parts.path in ("", "/")
        and not parts.query
        and not parts.fragment
    )


def service_account_problem(path: Path, allow_http: bool) -> str | None:
    """None when `path` holds a usable FCM service-account key, else why not. Never quotes the file."""
    name = f"WALLET_FCM_SERVICE_ACCOUNT ({path})"
    try:
        with path.open("rb") as handle:
            raw = handle.read(_MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return f"{name} does not exist"
    except OSError as exc:
        return f"{name} cannot be read ({exc.strerror or type(exc).__name__})"
    if len(raw) > _MAX_FILE_BYTES:
        return f"{name} is larger than a service-account key file ({_MAX_FILE_BYTES // 1024} KiB)"
    try:
        info = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return f"{name} is not a JSON file"
    if not isinstance(info, dict) or info.get("type") != "service_account":
        return f'{name} is not a service-account key ("type" must be "service_account")'
    for key in ("project_id", "client_email"):
        if not isinstance(info.get(key), str) or not info[key]:
            # FCM HTTP v1 sends to projects/<project_id>: without it no alert has an address
            return f"{name} has no {key}"
    private_key = info.get("private_key")
    if not isinstance(private_key, str) or "-----BEGIN" not in private_key:
        return f"{name} has no private_key in PEM form"
    token_uri = info.get("token_uri")
    if not isinstance(token_uri, str) or not _url_ok_any_path(token_uri, allow_http):
        rule = "an http(s) URL (http is for dev only)" if allow_http else "an https URL"
        return f"{name} must have a token_uri that is {rule}"
    return None


def _url_ok_any_path(url: str, allow_http: bool) -> bool:
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        return False
    schemes = ("https", "http") if allow_http else ("https",)
    return parts.scheme in schemes and bool(parts.hostname) and parts.username is None


def load_app_settings(get: Get, problems: list[str]) -> AppSettings:
    """AppSettings from the variables `get` reads; each unusable one adds a problem naming it."""
    # config/settings.py reports a bad WALLET_ENV itself; here only "is http allowed" depends on it
    is_dev = get("WALLET_ENV", "dev") == "dev"

    account_text = get("WALLET_FCM_SERVICE_ACCOUNT", "").strip()
    account = Path(account_text) if account_text else None
    if account is not None:
        problem = service_account_problem(account, is_dev)
        if problem is not None:
            problems.append(problem)
            account = None

    api_url = (get("WALLET_FCM_API_URL", "").strip() or FCM_API_URL).rstrip("/")
    if not _url_ok(api_url, is_dev):
        rule = "an http(s) URL (http is for dev only)" if is_dev else "an https URL"
        problems.append(f"WALLET_FCM_API_URL must be {rule} with no path, credentials, query or fragment")
        api_url = FCM_API_URL

    topic = get("WALLET_APP_APNS_TOPIC", "").strip() or None
    if topic is not None and (len(topic) > _BUNDLE_ID_MAX or not _BUNDLE_ID_RE.fullmatch(topic)):
        problems.append("WALLET_APP_APNS_TOPIC must be the iOS app's bundle id, e.g. com.example.loyalty")
        topic = None

    return AppSettings(fcm_service_account=account, fcm_api_url=api_url, apns_topic=topic)
