"""Relay wiring: build_channels gives each relay client its channel (or the dry-run one), and
/readyz names relays whose key is missing without turning the service unready."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import ConfigError, Settings, load_settings
from passes.apple.pki import ensure_dev_pki
from push.channels.apns.sender import ApnsChannel
from push.channels.base import Channels, PassPush
from push.channels.dryrun import DryRunChannel
from push.channels.relays import (
    Pass2UChannel,
    PassHubChannel,
    PassWalletChannel,
    RelayChannel,
    WalletPassesChannel,
    WalletUnionChannel,
)
from push.clients import (
    APPLE,
    PASS2U,
    PASSHUB,
    PASSWALLET,
    RELAY_CLIENTS,
    WALLETPASSES,
    WALLETUNION_FCM,
    WALLETUNION_HMS,
)
from service.push import build_channels, build_worker
from tests.unit.readiness import readyz

PASS_TYPE_ID = "pass.test.wallet.loyalty"
EXPECTED = {
    WALLETUNION_FCM: WalletUnionChannel,
    WALLETUNION_HMS: WalletUnionChannel,
    WALLETPASSES: WalletPassesChannel,
    PASS2U: Pass2UChannel,
    PASSHUB: PassHubChannel,
    PASSWALLET: PassWalletChannel,
}


def dev_settings(certs: Path, **env: str) -> Settings:
    ensure_dev_pki(certs, PASS_TYPE_ID, "TESTTEAM01")
    base = {"WALLET_CERTS_DIR": str(certs), "WALLET_PASS_TYPE_ID": PASS_TYPE_ID, "WALLET_TEAM_ID": "TESTTEAM01"}
    return load_settings({**base, **env}, dotenv=None)


async def test_each_relay_client_gets_its_channel(tmp_path: Path):
    assert set(EXPECTED) == set(RELAY_CLIENTS)
    settings = dev_settings(
        tmp_path,
        WALLET_PUSH_DRY_RUN="0",
        WALLET_RELAY_WALLETUNION_KEY="wu-key-0123456789",
        WALLET_RELAY_WALLETUNION_KEY_HEADER="X-Api-Key",
        WALLET_RELAY_PASS2U_URL="http://127.0.0.1:9/p2u/{passTypeIdentifier}/push",
        WALLET_RELAY_PASSWALLET_HOSTS="127.0.0.1,push.passwallet.net",
    )
    channels = build_channels(settings)
    try:
        assert isinstance(channels, Channels)
        assert isinstance(channels.get(APPLE, PASS_TYPE_ID), ApnsChannel)
        for client, kind in EXPECTED.items():
            channel = channels.get(client, PASS_TYPE_ID)
            assert type(channel) is kind, client
            assert isinstance(channel, RelayChannel) and channel.pass_type_id == PASS_TYPE_ID
            assert channels.get(client, "pass.other.type") is None  # keyed by our pass type only
        fcm, hms = channels.get(WALLETUNION_FCM, PASS_TYPE_ID), channels.get(WALLETUNION_HMS, PASS_TYPE_ID)
        assert isinstance(fcm, WalletUnionChannel) and isinstance(hms, WalletUnionChannel)
        assert (fcm.hms, hms.hms) == (False, True)
        assert fcm.url == hms.url == settings.relays.walletunion.url
        assert fcm.key == hms.key == "wu-key-0123456789"
        assert fcm.key_header == hms.key_header == "X-Api-Key"
        pass2u = channels.get(PASS2U, PASS_TYPE_ID)
        assert isinstance(pass2u, Pass2UChannel)
        assert pass2u.endpoint(PassPush("t" * 40)) == f"http://127.0.0.1:9/p2u/{PASS_TYPE_ID}/push"
        passwallet = channels.get(PASSWALLET, PASS_TYPE_ID)
        assert isinstance(passwallet, PassWalletChannel)
        assert passwallet.allowed_hosts == frozenset({"127.0.0.1", "push.passwallet.net"})
        assert passwallet.allow_http is True  # dev
        # a relay without its key is still routed: its pushes fail naming the variable
        passhub = channels.get(PASSHUB, PASS_TYPE_ID)
        assert isinstance(passhub, PassHubChannel) and passhub.key is None
    finally:
        await channels.aclose()


async def test_a_missing_key_fails_the_push_naming_the_variable(tmp_path: Path):
    channels = build_channels(dev_settings(tmp_path, WALLET_PUSH_DRY_RUN="0"))
    try:
        channel = channels.get(PASSHUB, PASS_TYPE_ID)
        assert channel is not None
        [result] = await channel.deliver([PassPush("t" * 40)])
        assert result.status == "failed" and "WALLET_RELAY_PASSHUB_KEY" in (result.reason or "")
    finally:
        await channels.aclose()


async def test_dry_run_serves_every_relay_client(tmp_path: Path):
    channels = build_channels(dev_settings(tmp_path))
    try:
        dry = channels.get(APPLE, PASS_TYPE_ID)
        assert isinstance(dry, DryRunChannel)
        for client in RELAY_CLIENTS:
            assert channels.get(client, PASS_TYPE_ID) is dry
            assert channels.get(client, "pass.any.other") is dry
        assert channels.all() == [dry]
    finally:
        await channels.aclose()


# -- /readyz ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dry_run", ["0", "1"])
async def test_readyz_names_missing_relay_keys_but_stays_ready(tmp_path: Path, dry_run: str):
    settings = dev_settings(tmp_path, WALLET_PUSH_DRY_RUN=dry_run, WALLET_RELAY_PASSHUB_KEY="ph-key-0123456789")
    status, body = await readyz(settings)
    assert status == 200 and body["status"] == "ready" and body["store"] == "ok"
    assert "certificates" in body
    expected = [] if dry_run == "1" else ["WALLET_RELAY_WALLETUNION_KEY", "WALLET_RELAY_PASS2U_KEY"]
    assert body["relays"] == {"missing_keys": expected}


def test_worker_concurrency_is_a_bounded_setting(tmp_path: Path):
    assert load_settings({}, dotenv=None).worker_concurrency == 1000
    assert load_settings({"WALLET_WORKER_CONCURRENCY": "200"}, dotenv=None).worker_concurrency == 200
    for bad in ("0", "abc", "100001"):
        with pytest.raises(ConfigError) as info:
            load_settings({"WALLET_WORKER_CONCURRENCY": bad}, dotenv=None)
        assert "WALLET_WORKER_CONCURRENCY" in str(info.value)
    worker = build_worker(dev_settings(tmp_path, WALLET_WORKER_CONCURRENCY="300"), store=None)  # type: ignore[arg-type]
    assert worker.concurrency == 300


def test_worker_concurrency_keeps_pushes_in_flight_bounded(tmp_path: Path):
    # 1000 entries x 10 devices is the bound; more devices per pass mean fewer entries at once
    many = dev_settings(tmp_path, WALLET_MAX_DEVICES_PER_PASS="100")
    assert build_worker(many, store=None).concurrency == 100  # type: ignore[arg-type]
    assert build_worker(dev_settings(tmp_path), store=None).concurrency == 1000  # type: ignore[arg-type]
    huge = dev_settings(tmp_path, WALLET_MAX_DEVICES_PER_PASS="1000", WALLET_WORKER_CONCURRENCY="5")
    assert build_worker(huge, store=None).concurrency == 5  # type: ignore[arg-type]
