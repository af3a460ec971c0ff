"""Settings: SPEC's environment variables (a `.env` file may set the same names), validated once."""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from config.apps import AppSettings, load_app_settings
from config.geo import GeoSettings, load_geo_settings
from config.google import GoogleSettings, load_google_settings
from config.relays import RelaySettings, load_relay_settings

ROLES = ("issuer", "marketing", "admin")
DEV_PASS_TYPE_ID = "pass.dev.wallet.loyalty"
DEV_TEAM_ID = "DEVTEAM123"

_PASS_TYPE_RE = re.compile(r"^pass(\.[A-Za-z0-9-]+)+$")
_TEAM_RE = re.compile(r"^[A-Z0-9]{10}$")
_RATE_RE = re.compile(r"[1-9][0-9]{0,8}/(second|minute|hour|day)")


class ConfigError(Exception):
    """Settings that cannot be used; `problems` holds one clear message per item."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Settings:
    env: str = "dev"
    host: str = "127.0.0.1"
    port: int = 8000
    database_url: str = "sqlite:///var/wallet.db"
    public_url: str = "http://127.0.0.1:8000"
    certs_dir: Path = Path("certs")
    templates_dir: Path = Path("pass_templates")
    pass_type_id: str = DEV_PASS_TYPE_ID
    team_id: str = DEV_TEAM_ID
    pass_key_password: str | None = None
    # key -> role; filled from WALLET_API_KEYS or, in dev, from the generated dev secrets
    api_keys: dict[str, str] = field(default_factory=dict)
    ledger_secret: str = ""
    link_secret: str = ""
    # signs the console's session cookie and the pages' CSRF tokens (web/pages/security.py)
    session_secret: str = ""
    # map tiles of the console's map: a URL template with {z}/{x}/{y}, and its host goes into the CSP
    tiles_url: str = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    # the enrolment webhook of the join page (the ledger backend opens the account)
    enroll_webhook_url: str | None = None
    enroll_webhook_secret: str = ""
    link_ttl_seconds: int = 7 * 24 * 3600
    apns_endpoint: str = "https://api.push.apple.com"
    apns_ca_file: str | None = None
    apns_key_file: str | None = None
    apns_key_id: str | None = None
    push_dry_run: bool = True
    run_worker: bool = True
    # how long a claimed outbox entry stays with its worker before another may take it over
    worker_lease_seconds: float = 30.0
    # outbox entries one worker keeps in flight (push/worker.py): several workers share a burst
    # only when it is larger than this
    worker_concurrency: int = 1000
    # registrations kept per pass; a new one beyond evicts the least recently updated
    max_devices_per_pass: int = 10
    # connections (and tasks) the web process serves at once; beyond, uvicorn answers 503
    max_connections: int = 1000
    # retention (service/retention.py): accepted ledger event ids are remembered this long (longer
    # than the ledger's retry window), dead letters kept at most, report facts kept this many days
    idempotency_days: int = 35
    # a standalone worker (`cli worker`) serves its own /metrics on this port; None: it serves none
    worker_metrics_port: int | None = None
    dead_letters_kept: int = 100_000
    report_days: int = 400
    job_days: int = 90  # finished geo and import jobs
    # PassKit registrations per pass ("<count>/<second|minute|hour|day>"), see web/ratelimit.py
    passkit_register_rate: str = "20/minute"
    # requests per client address to the public pages (/join, /activate, /c, the .pkpass links), see web/ratelimit.py
    pages_rate: str = "60/minute"
    # PassKit requests per pass (per device for serials-since, per client address for the log)
    passkit_rate: str = "600/minute"
    # Google Wallet callbacks per client address
    google_callbacks_rate: str = "600/minute"
    # proxies whose X-Forwarded-For names the client (addresses or networks); empty: the direct peer
    trusted_proxies: tuple[str, ...] = ()
    # the wallet badge artwork of the card page; None: the shipped stand-ins (web/pages/static/badges)
    badges_dir: Path | None = None
    # the Android pass apps' relays and card-page links (config/relays.py)
    relays: RelaySettings = field(default_factory=RelaySettings)
    # Google Wallet: issuer, service account, REST root, save-JWT origins (config/google.py)
    google: GoogleSettings = field(default_factory=GoogleSettings)
    # geo-campaign jobs, schedules, pass relevance radius, ping rate (config/geo.py)
    geo: GeoSettings = field(default_factory=GeoSettings)
    # companion app: FCM and the iOS app's APNs topic (config/apps.py)
    apps: AppSettings = field(default_factory=AppSettings)

    @property
    def is_dev(self) -> bool:
        return self.env == "dev"

    @property
    def web_service_url(self) -> str:
        from passes.apple.pass_json import web_service_url  # the one rule, next to the pass it goes in

        return web_service_url(self.public_url)


def read_dotenv(path: Path) -> dict[str, str]:
    """`NAME=value` lines; `#` comments, optional `export `, single or double quotes."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        if line.startswith("export "):
            line = line[len("export ") :]
        name, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[name.strip()] = value
    return values


def parse_api_keys(text: str) -> tuple[dict[str, str], list[str]]:
    keys: dict[str, str] = {}
    problems: list[str] = []
    for number, item in enumerate(filter(None, (p.strip() for p in text.split(","))), start=1):
        role, sep, key = item.partition(":")
        if not sep or role not in ROLES:
            problems.append(f"WALLET_API_KEYS entry {number}: expected role:key with role one of {', '.join(ROLES)}")
        elif len(key) < 16:
            problems.append(f"WALLET_API_KEYS entry {number}: the key must be at least 16 characters")
        else:
            keys[key] = role
    return keys, problems


def redacted_url(url: str) -> str:
    """`url` fit for a log line or the banner: any password (and user) replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port is not None else "")
    return parts._replace(netloc=netloc).geturl()


def _whole(text: str, max_digits: int = 9) -> int | None:
    """A whole number written in ASCII digits only (str.isdigit() also takes other scripts'
    digits, which int() may then refuse), or None."""
    if not 0 < len(text) <= max_digits or not text.isascii() or not text.isdigit():
        return None
    return int(text)


def _bounded(name: str, text: str, low: int, high: int, problems: list[str]) -> int:
    value = _whole(text)
    if value is None or not low <= value <= high:
        problems.append(f"{name} must be a whole number from {low} to {high}")
        return low
    return value


def _networks(name: str, text: str, problems: list[str]) -> tuple[str, ...]:
    """Comma-separated IP addresses or networks (`10.0.0.1`, `10.0.0.0/8`), normalized."""
    found: list[str] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            found.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            problems.append(f"{name}: {item[:50]!r} is not an IP address or network")
    return tuple(found)


def _flag(name: str, value: str, problems: list[str]) -> bool:
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    problems.append(f"{name} must be 1 or 0")
    return False


def load_settings(environ: dict[str, str] | None = None, dotenv: Path | None = Path(".env")) -> Settings:
    """Settings from `.env` overridden by the environment. Secrets that dev generates (API keys,
    ledger secret) are left empty here and filled by config.dev_secrets; prod must set them."""
    source = dict(read_dotenv(dotenv)) if dotenv is not None else {}
    source.update(os.environ if environ is None else environ)
    get = source.get
    problems: list[str] = []

    env = get("WALLET_ENV", "dev")
    if env not in ("dev", "prod"):
        problems.append("WALLET_ENV must be dev or prod")
    prod = env == "prod"

    port = _whole(get("PORT", "8000"), 5) or 0
    if not 0 < port < 65536:
        problems.append("PORT must be a number from 1 to 65535")

    database_url = get("WALLET_DATABASE_URL", "sqlite:///var/wallet.db")
    if urlsplit(database_url).scheme not in ("sqlite", "redis", "rediss"):
        problems.append("WALLET_DATABASE_URL must start with sqlite:/// or redis://")

    host = get("HOST", "127.0.0.1")
    # unset, it follows where the service listens (SPEC's default for the default HOST/PORT)
    listen_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    public_url = get("WALLET_PUBLIC_URL", f"http://{listen_host}:{port or 8000}").rstrip("/")
    public = urlsplit(public_url)
    if public.scheme not in ("http", "https") or not public.netloc:
        problems.append("WALLET_PUBLIC_URL must be an http(s) URL")
    elif prod and public.scheme != "https":
        problems.append("WALLET_PUBLIC_URL must use https in prod (Apple Wallet requires it)")

    pass_type_id = get("WALLET_PASS_TYPE_ID") or ("" if prod else DEV_PASS_TYPE_ID)
    if not pass_type_id:
        problems.append("WALLET_PASS_TYPE_ID is not set")
    elif not _PASS_TYPE_RE.match(pass_type_id):
        problems.append("WALLET_PASS_TYPE_ID must look like pass.com.example.loyalty")
    team_id = get("WALLET_TEAM_ID") or ("" if prod else DEV_TEAM_ID)
    if not team_id:
        problems.append("WALLET_TEAM_ID is not set")
    elif not _TEAM_RE.match(team_id):
        problems.append("WALLET_TEAM_ID must be 10 upper-case letters or digits")

    api_keys: dict[str, str] = {}
    if get("WALLET_API_KEYS"):
        api_keys, key_problems = parse_api_keys(get("WALLET_API_KEYS", ""))
        problems.extend(key_problems)
    elif prod:
        problems.append("WALLET_API_KEYS is not set")

    ledger_secret = get("WALLET_LEDGER_SECRET", "")
    if prod and not ledger_secret:
        problems.append("WALLET_LEDGER_SECRET is not set")
    elif ledger_secret and len(ledger_secret) < 16:
        problems.append("WALLET_LEDGER_SECRET must be at least 16 characters")

    session_secret = get("WALLET_SESSION_SECRET", "")
    if prod and not session_secret:
        problems.append("WALLET_SESSION_SECRET is not set (it signs console sessions and form tokens)")
    elif session_secret and len(session_secret) < 32:
        problems.append("WALLET_SESSION_SECRET must be at least 32 characters")
    tiles_url = get("WALLET_MAP_TILES_URL", "https://tile.openstreetmap.org/{z}/{x}/{y}.png")
    if tiles_url and (urlsplit(tiles_url).scheme not in ("https", "http") or "{z}" not in tiles_url):
        problems.append("WALLET_MAP_TILES_URL must be an http(s) URL template with {z}, {x} and {y}, or empty")
    enroll_url = get("WALLET_ENROLL_WEBHOOK_URL", "") or None
    if enroll_url and urlsplit(enroll_url).scheme not in ("https", "http"):
        problems.append("WALLET_ENROLL_WEBHOOK_URL must be an http(s) URL")
    enroll_secret = get("WALLET_ENROLL_WEBHOOK_SECRET", "")
    if prod and enroll_url and len(enroll_secret) < 16:
        problems.append(
            "WALLET_ENROLL_WEBHOOK_SECRET must be set (at least 16 characters) with WALLET_ENROLL_WEBHOOK_URL"
        )

    apns_endpoint = get("WALLET_APNS_ENDPOINT", "https://api.push.apple.com").rstrip("/")
    if urlsplit(apns_endpoint).scheme != "https":
        problems.append("WALLET_APNS_ENDPOINT must be an https URL")
    apns_ca_file = get("WALLET_APNS_CA_FILE") or None
    if apns_ca_file and not Path(apns_ca_file).is_file():
        problems.append("WALLET_APNS_CA_FILE does not name a file")

    dry_run = _flag("WALLET_PUSH_DRY_RUN", get("WALLET_PUSH_DRY_RUN", "0" if prod else "1"), problems)
    if prod and dry_run:
        problems.append("WALLET_PUSH_DRY_RUN=1 is for dev only")
    run_worker_default = "1" if database_url.startswith("sqlite") else "0"
    run_worker = _flag("WALLET_RUN_WORKER", get("WALLET_RUN_WORKER", run_worker_default), problems)

    lease_text = get("WALLET_WORKER_LEASE_SECONDS", "30")
    try:
        lease = float(lease_text)
    except ValueError:
        lease = 0.0
    if not 0.5 <= lease <= 3600:
        problems.append("WALLET_WORKER_LEASE_SECONDS must be a number of seconds from 0.5 to 3600")

    ttl_text = get("WALLET_LINK_TTL_SECONDS", str(7 * 24 * 3600))
    link_ttl = _whole(ttl_text) or 0
    if link_ttl < 60:
        problems.append("WALLET_LINK_TTL_SECONDS must be a whole number of seconds, at least 60")
    worker_concurrency = _bounded(
        "WALLET_WORKER_CONCURRENCY", get("WALLET_WORKER_CONCURRENCY", "1000"), 1, 100_000, problems
    )
    max_devices = _bounded("WALLET_MAX_DEVICES_PER_PASS", get("WALLET_MAX_DEVICES_PER_PASS", "10"), 1, 1000, problems)
    max_connections = _bounded("WALLET_MAX_CONNECTIONS", get("WALLET_MAX_CONNECTIONS", "1000"), 1, 100_000, problems)
    idempotency_days = _bounded("WALLET_IDEMPOTENCY_DAYS", get("WALLET_IDEMPOTENCY_DAYS", "35"), 1, 3650, problems)
    dead_letters_kept = _bounded(
        "WALLET_DEAD_LETTERS_KEPT", get("WALLET_DEAD_LETTERS_KEPT", "100000"), 1, 10_000_000, problems
    )
    report_days = _bounded("WALLET_REPORT_DAYS", get("WALLET_REPORT_DAYS", "400"), 1, 3650, problems)
    job_days = _bounded("WALLET_JOB_DAYS", get("WALLET_JOB_DAYS", "90"), 1, 3650, problems)
    metrics_port_text = get("WALLET_WORKER_METRICS_PORT", "")
    worker_metrics_port = (
        _bounded("WALLET_WORKER_METRICS_PORT", metrics_port_text, 1, 65535, problems) if metrics_port_text else None
    )
    register_rate = get("WALLET_RATE_PASSKIT_REGISTER", "20/minute")
    if not _RATE_RE.fullmatch(register_rate):
        problems.append("WALLET_RATE_PASSKIT_REGISTER must look like 20/minute (per second, minute, hour or day)")
    pages_rate = get("WALLET_RATE_PAGES", "60/minute")
    if not _RATE_RE.fullmatch(pages_rate):
        problems.append("WALLET_RATE_PAGES must look like 60/minute (per second, minute, hour or day)")
    passkit_rate = get("WALLET_RATE_PASSKIT", "600/minute")
    if not _RATE_RE.fullmatch(passkit_rate):
        problems.append("WALLET_RATE_PASSKIT must look like 600/minute (per second, minute, hour or day)")
    google_callbacks_rate = get("WALLET_RATE_GOOGLE_CALLBACKS", "600/minute")
    if not _RATE_RE.fullmatch(google_callbacks_rate):
        problems.append("WALLET_RATE_GOOGLE_CALLBACKS must look like 600/minute (per second, minute, hour or day)")
    trusted_proxies = _networks("WALLET_TRUSTED_PROXIES", get("WALLET_TRUSTED_PROXIES", ""), problems)
    badges_text = get("WALLET_BADGES_DIR", "")
    badges_dir = Path(badges_text) if badges_text else None
    if badges_dir is not None and not badges_dir.is_dir():
        problems.append("WALLET_BADGES_DIR does not name a folder")
    relays = load_relay_settings(get, env == "dev", problems)
    certs_dir = Path(get("WALLET_CERTS_DIR", "certs"))
    google = load_google_settings(get, env == "dev", certs_dir, public_url, problems)
    geo = load_geo_settings(get, problems)
    apps = load_app_settings(get, problems)

    if problems:
        raise ConfigError(problems)
    return Settings(
        env=env,
        host=host,
        port=port,
        database_url=database_url,
        public_url=public_url,
        certs_dir=certs_dir,
        templates_dir=Path(get("WALLET_TEMPLATES_DIR", "pass_templates")),
        pass_type_id=pass_type_id,
        team_id=team_id,
        pass_key_password=get("WALLET_PASS_KEY_PASSWORD") or None,
        api_keys=api_keys,
        ledger_secret=ledger_secret,
        link_secret=get("WALLET_LINK_SECRET", ""),
        session_secret=session_secret,
        tiles_url=tiles_url,
        enroll_webhook_url=enroll_url,
        enroll_webhook_secret=enroll_secret,
        link_ttl_seconds=link_ttl,
        apns_endpoint=apns_endpoint,
        apns_ca_file=apns_ca_file,
        apns_key_file=get("WALLET_APNS_KEY_FILE") or None,
        apns_key_id=get("WALLET_APNS_KEY_ID") or None,
        push_dry_run=dry_run,
        run_worker=run_worker,
        worker_lease_seconds=lease,
        worker_concurrency=worker_concurrency,
        max_devices_per_pass=max_devices,
        max_connections=max_connections,
        idempotency_days=idempotency_days,
        worker_metrics_port=worker_metrics_port,
        dead_letters_kept=dead_letters_kept,
        report_days=report_days,
        job_days=job_days,
        passkit_register_rate=register_rate,
        pages_rate=pages_rate,
        passkit_rate=passkit_rate,
        google_callbacks_rate=google_callbacks_rate,
        trusted_proxies=trusted_proxies,
        badges_dir=badges_dir,
        relays=relays,
        google=google,
        geo=geo,
        apps=apps,
    )
