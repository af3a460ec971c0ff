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


# Options of ours in a redis:// URL, taken out before redis-py reads it.
REDIS_OPTIONS = ("prefix", "wait_replicas", "durability")


def split_options(url: str) -> tuple[str, dict[str, str]]:
    """`redis://host:port/db?prefix=name:&wait_replicas=1`: `prefix` keeps several deployments
    (or test runs) apart in one database; `wait_replicas` makes every promised write wait for
    that many replicas (Redis WAIT); `durability=relaxed` accepts a server that may lose
    acknowledged writes (see store/durability.py)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in query if k in REDIS_OPTIONS}
    rest = urlencode([(k, v) for k, v in query if k not in REDIS_OPTIONS])
    return urlunsplit(parts._replace(query=rest)), ours


def wait_replicas(options: dict[str, str]) -> int:
    text = options.get("wait_replicas", "0")
    if not (text.isascii() and text.isdigit() and len(text) <= 2):
        raise StoreError("wait_replicas must be a whole number of replicas")
    return int(text)


def build_store(url: str, **opts: Any) -> Store:
    """The adapter for `url`, not yet opened. `opts` go to its constructor
    (e.g. `prefix` for Redis, `busy_timeout_ms` for SQLite)."""
    scheme = urlsplit(url).scheme.lower()
    if scheme == "sqlite":
        from store.sqlite import SqliteStore

        path, _, query = url.partition("?")
        options = dict(parse_qsl(query, keep_blank_values=True))
        if set(options) - {"synchronous"}:
            raise StoreError("a SQLite URL takes one option: ?synchronous=full|normal")
        if "synchronous" in options:
            opts.setdefault("synchronous", options["synchronous"])
        return SqliteStore(sqlite_path(path), **opts)
    if scheme in ("redis", "rediss", "unix"):
        from store.redis import RedisStore

        url, options = split_options(url)
        if "prefix" in options:
            opts.setdefault("prefix", options["prefix"])
        if wait_replicas(options):
            opts.setdefault("wait_replicas", wait_replicas(options))
        return RedisStore(url, **opts)
    # The URL may carry a password: name only the scheme.
    raise StoreError(f"unsupported database URL scheme {scheme!r}; use sqlite:/// or redis://")


async def open_store(url: str, **opts: Any) -> Store:
    """The adapter for `url`, opened (connected and migrated)."""
    store = build_store(url, **opts)
    await store.open()
    return store
