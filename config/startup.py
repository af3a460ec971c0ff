"""Start-up preparation: dev PKI and secrets on first start, certificate checks that decide
whether the service may start (prod names every problem at once)."""

from __future__ import annotations

import datetime as _dt
import sys
from dataclasses import dataclass, field
from typing import Any

from config.dev_secrets import with_secrets
from config.settings import ConfigError, Settings, load_settings
from passes.apple.certs import CertReport, check_certificates
from passes.apple.pki import ensure_dev_pki


@dataclass(frozen=True)
class Prepared:
    settings: Settings
    certs: CertReport
    dev_secrets: dict[str, Any] | None
    created_pki: bool
    created_secrets: bool
    warnings: list[str] = field(default_factory=list)  # printed at start, never stop it


def prepare(settings: Settings, now: _dt.datetime | None = None) -> Prepared:
    created_pki = False
    if settings.is_dev:
        created_pki = ensure_dev_pki(settings.certs_dir, settings.pass_type_id, settings.team_id)
    settings, dev, created_secrets = with_secrets(settings)
    report = check_certificates(
        settings.certs_dir,
        settings.pass_type_id,
        settings.team_id,
        settings.pass_key_password,
        now=now,
    )
    problems = list(report.problems)
    if settings.apns_key_file and not settings.apns_key_id:
        problems.append("WALLET_APNS_KEY_FILE is set but WALLET_APNS_KEY_ID is not")
    warnings: list[str] = []
    if not settings.is_dev and settings.database_url.startswith(("redis://", "rediss://")):
        from store.durability import persistence_problems

        refused, warned = persistence_problems(settings.database_url)
        problems.extend(refused)
        warnings.extend(warned)
    if problems:
        raise ConfigError(problems)
    return Prepared(settings, report, dev, created_pki, created_secrets, warnings)


def prepare_or_exit() -> Prepared:
    """Settings from the environment, prepared; on any problem, each one on its own line and exit 1."""
    try:
        return prepare(load_settings())
    except ConfigError as exc:
        print("wallet service cannot start:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        raise SystemExit(1) from None
