"""Choosing and opening the store adapter named by WALLET_DATABASE_URL."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from store.port import Store, StoreError


def sqlite_path(url: str) -> str:
    """The file of a `sqlite:///` URL, as SQLAlchemy reads it: `sqlite:///var/wallet.db` is
    relative to the working directory, `sqlite:////srv/wallet.db` is absolute."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise StoreError("a SQLite URL looks like sqlite:///path/to/file.db")
    path = url[len(prefix) :]
    if path == ":memory:":
        # Each process (web, worker) would get its own empty database: never what is meant.
        raise StoreError("sqlite:///:memory: is not supported; give a file path")
    return path


def split_prefix(url: str) -> tuple[str, str | None]:
    """`redis://host:port/db?prefix=name:` keeps several deployments (or test runs) apart in one
    database; the option is ours, so it is taken out before redis-py reads the URL."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((v for k, v in query if k == "prefix"), None)
    rest = urlencode([(k, v) for k, v in query if k != "prefix"])
    return urlunsplit(parts._replace(query=rest)), prefix


def build_store(url: str, **opts: Any) -> Store:
    """The adapter for `url`, not yet opened. `opts` go to its constructor
    (e.g. `prefix` for Redis, `busy_timeout_ms` for SQLite)."""
    scheme = urlsplit(url).scheme.lower()
    if scheme == "sqlite":
        from store.sqlite import SqliteStore

        return SqliteStore(sqlite_path(url), **opts)
    if scheme in ("redis", "rediss", "unix"):
        from store.redis import RedisStore

        url, prefix = split_prefix(url)
        if prefix is not None:
            opts.setdefault("prefix", prefix)
        return RedisStore(url, **opts)
    # The URL may carry a password: name only the scheme.
    raise StoreError(f"unsupported database URL scheme {scheme!r}; use sqlite:/// or redis://")


async def open_store(url: str, **opts: Any) -> Store:
    """The adapter for `url`, opened (connected and migrated)."""
    store = build_store(url, **opts)
    await store.open()
    return store
