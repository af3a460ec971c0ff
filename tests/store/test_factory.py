"""open_store: the URL picks and opens the adapter."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from store.factory import build_store, open_store, sqlite_path
from store.port import StoreError
from store.redis import SCHEMA_VERSION, RedisStore
from store.sqlite import SqliteStore
from tests.conftest import REDIS_URL, delete_prefix


def test_sqlite_paths() -> None:
    assert sqlite_path("sqlite:///var/wallet.db") == "var/wallet.db"
    assert sqlite_path("sqlite:////srv/wallet/wallet.db") == "/srv/wallet/wallet.db"
    for bad in ("sqlite://", "sqlite:///", "sqlite:///:memory:", "sqlite:/x.db"):
        with pytest.raises(StoreError):
            sqlite_path(bad)


def test_unknown_scheme_is_refused_without_echoing_the_url() -> None:
    with pytest.raises(StoreError) as info:
        build_store("postgres://user:s3cret@db/wallet")
    assert "s3cret" not in str(info.value)


async def test_open_sqlite_creates_the_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = await open_store("sqlite:///var/data/wallet.db")
    try:
        assert isinstance(store, SqliteStore)
        assert await store.ping()
        assert await store.schema_version() >= 1
        assert (tmp_path / "var" / "data" / "wallet.db").exists()
    finally:
        await store.close()


async def test_open_redis_with_prefix() -> None:
    prefix = f"test:{uuid.uuid4().hex}:"
    store = await open_store(REDIS_URL, prefix=prefix)
    try:
        assert isinstance(store, RedisStore) and store.prefix == prefix
        assert await store.ping()
        assert await store.schema_version() == SCHEMA_VERSION
    finally:
        await store.close()
        await delete_prefix(prefix)
