"""Push wiring: the channel table from settings, the worker, and running it in or out of the
web process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

from cryptography.hazmat.primitives import serialization

from config.dev_secrets import DEV_TOKEN_URI
from config.settings import Settings
from passes.apple.certs import load_signing_material
from passes.assets import program_hero_url, program_logo_url
from passes.google.vouchers import RESOURCES, voucher_class, voucher_object
from passes.programs import Program, load_programs
from push.channels.apns.sender import ApnsChannel
from push.channels.base import ANY, Channel, ChannelKey, Channels, PassPush
from push.channels.dryrun import DryRunChannel
from push.channels.fcm import FcmChannel
from push.channels.google import GoogleWalletChannel
from push.channels.relays import (
    Pass2UChannel,
    PassHubChannel,
    PassWalletChannel,
    WalletPassesChannel,
    WalletUnionChannel,
)
from push.channels.webhook import WebhookChannel
from push.clients import PASS2U, PASSHUB, PASSWALLET, RELAY_CLIENTS, WALLETPASSES, WALLETUNION_FCM, WALLETUNION_HMS
from push.kinds.enroll_webhook import ENROLL_WEBHOOK
from push.kinds.google_object import GOOGLE
from push.kinds.google_voucher import GOOGLE_VOUCHER, VoucherChannel, VoucherRender
from push.results import PushResult, token_hint
from push.worker import APPLE, JOURNAL_KEEP, Worker
from service.geo import GeoService, build_runner
from service.google import ensure_classes, google_channel
from service.imports import ImportRunner
from service.ledger import LedgerIntake
from service.retention import Retention
from store.factory import open_store
from store.port import Store, Voucher

log = logging.getLogger(__name__)

# the clients AppAlert routes to (push/kinds/app_alert.py: "app:<platform>")
APP_ANDROID = "app:android"
APP_IOS = "app:ios"


def client_cert_pem(settings: Settings) -> bytes:
    """Certificate + key as one unencrypted PEM, in memory: APNs certificate auth uses the same
    Pass Type ID certificate that signs passes, whether it came as PEM, encrypted PEM or .p12."""
    material = load_signing_material(settings.certs_dir, settings.pass_key_password)
    key = material.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # the intermediate rides along so the server can build the chain to its trusted root
    chain = material.cert.public_bytes(serialization.Encoding.PEM) + material.wwdr.public_bytes(
        serialization.Encoding.PEM
    )
    return chain + key


def apns_channel(settings: Settings, app_topic: str | None = None) -> ApnsChannel:
    """The APNs channel of our pass type; with `app_topic`, one that also sends alerts to that app."""
    if settings.apns_key_file:
        with open(settings.apns_key_file, encoding="utf-8") as handle:
            key_p8 = handle.read()
        return ApnsChannel(
            settings.pass_type_id,
            endpoint=settings.apns_endpoint,
            key_p8=key_p8,
            key_id=settings.apns_key_id,
            team_id=settings.team_id,
            ca_file=settings.apns_ca_file,
            app_topic=app_topic,
        )
    return ApnsChannel(
        settings.pass_type_id,
        endpoint=settings.apns_endpoint,
        client_cert_pem=client_cert_pem(settings),
        ca_file=settings.apns_ca_file,
        app_topic=app_topic,
    )


def app_channels(settings: Settings) -> dict[ChannelKey, Channel]:
    """The companion app's alert channels, for the platforms whose settings are given (config/apps.py).
    A platform without settings has no route: its alerts are dead-lettered, visibly, not dropped."""
    apps = settings.apps
    routes: dict[ChannelKey, Channel] = {}
    if apps.fcm_service_account is not None:
        routes[(APP_ANDROID, ANY)] = FcmChannel(str(apps.fcm_service_account), fcm_endpoint_base=apps.fcm_endpoint_base)
    if apps.apns_topic is not None:
        # A channel of its own rather than the pass-update one: alerts then never wait behind a
        # burst of pass updates for a stream, and the journal names the app's topic.
        alerts = apns_channel(settings, app_topic=apps.apns_topic)
        alerts.name = f"apns:{apps.apns_topic}"
        routes[(APP_IOS, ANY)] = alerts
    return routes


def relay_channels(settings: Settings) -> dict[ChannelKey, Channel]:
    """A channel per relay client for our pass type. A relay whose key is required but missing is
    built all the same: its pushes then fail naming the variable, so they are dead-lettered with
    that reason rather than left without a route."""
    relays = settings.relays
    scope = settings.pass_type_id
    union = relays.walletunion
    return {
        (WALLETUNION_FCM, scope): WalletUnionChannel(
            scope, hms=False, key_header=relays.walletunion_key_header, url=union.url, key=union.key
        ),
        (WALLETUNION_HMS, scope): WalletUnionChannel(
            scope, hms=True, key_header=relays.walletunion_key_header, url=union.url, key=union.key
        ),
        (WALLETPASSES, scope): WalletPassesChannel(scope, url=relays.walletpasses.url, key=relays.walletpasses.key),
        (PASS2U, scope): Pass2UChannel(scope, url=relays.pass2u.url, key=relays.pass2u.key),
        (PASSHUB, scope): PassHubChannel(scope, url=relays.passhub.url, key=relays.passhub.key),
        (PASSWALLET, scope): PassWalletChannel(
            scope, allowed_hosts=relays.passwallet_hosts, allow_http=relays.allow_http
        ),
    }


def webhook_channels(settings: Settings) -> dict[ChannelKey, Channel]:
    """The enrolment webhook, whenever WALLET_ENROLL_WEBHOOK_URL is set, dry run or not: it tells our
    own ledger backend about a member, not a phone, and an operator who names a URL wants it called.
    Unset, nothing is enqueued for it (web/pages/join.py), so there is no route either."""
    url = settings.enroll_webhook_url
    if not url:
        return {}
    return {(ENROLL_WEBHOOK, ANY): WebhookChannel(url, settings.enroll_webhook_secret, name="enroll_webhook")}


def build_channels(
    settings: Settings, store: Store | None = None, programs: Mapping[str, Program] | None = None
) -> Channels:
    """Where each kind of push goes. Companion-app alerts go out through FCM and APNs when their
    settings are given (app_channels). Google Wallet objects go out when Google Wallet is on and the
    store and programs are given (the channel keeps what it synced in the store)."""
    if settings.push_dry_run:
        dry = DryRunChannel()
        routes: dict[ChannelKey, Channel] = {(APPLE, settings.pass_type_id): dry}
        routes.update({(client, ANY): dry for client in (*RELAY_CLIENTS, GOOGLE, GOOGLE_VOUCHER, APP_ANDROID, APP_IOS)})
        routes.update(webhook_channels(settings))
        return Channels(routes)
    routes = {(APPLE, settings.pass_type_id): apns_channel(settings), **relay_channels(settings)}
    routes.update(app_channels(settings))
    routes.update(webhook_channels(settings))
    account = settings.google.service_account
    if account is not None and account.token_uri == DEV_TOKEN_URI:
        # dev's generated key reaches no Google: its object updates are recorded as a dry run
        routes[(GOOGLE, ANY)] = routes[(GOOGLE_VOUCHER, ANY)] = DryRunChannel("google_dry_run")
    elif store is not None and programs is not None:
        google = google_channel(settings, programs, store)
        if google is not None:
            routes[(GOOGLE, ANY)] = google
            routes[(GOOGLE_VOUCHER, ANY)] = VoucherChannel(google, voucher_render(settings, programs))
    return Channels(routes)


def voucher_render(settings: Settings, programs: Mapping[str, Program]) -> VoucherRender:
    """`render(voucher)` -> (its Google object, its class, their REST resources) for VoucherChannel."""
    issuer = settings.google.issuer_id
    base = settings.public_url

    def render(voucher: Voucher) -> tuple[dict[str, Any], dict[str, Any], tuple[str, str]]:
        program = programs[voucher.program]
        made = voucher_class(
            program,
            issuer,
            voucher,
            logo_url=program_logo_url(base, program),
            hero_url=program_hero_url(base, program),
            callback_url=f"{base}/google/callbacks",
        )
        return voucher_object(program, voucher, issuer), made, RESOURCES[voucher.kind]

    return render


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def build_worker(
    settings: Settings,
    store: Store,
    wakeup: asyncio.Event | None = None,
    programs: Mapping[str, Program] | None = None,
) -> Worker:
    return Worker(
        store,
        channels=build_channels(settings, store, programs),
        consumer=consumer_name(),
        lease_seconds=settings.worker_lease_seconds,
        concurrency=worker_concurrency(settings),
        wakeup=wakeup,
        dead_letters_kept=settings.dead_letters_kept,
    )


# Pushes one worker holds at once: an entry expands to up to WALLET_MAX_DEVICES_PER_PASS pushes, each a
# few KB while it waits (bench/memory.py: ~120 MB of RSS at 10 000). Beyond it memory grows and slow
# answers time out into duplicate pushes, so entries in flight are capped to keep within it.
PUSHES_IN_FLIGHT = 10_000


def worker_concurrency(settings: Settings) -> int:
    """Entries in flight: WALLET_WORKER_CONCURRENCY, lowered so that entries x devices per pass stays
    within PUSHES_IN_FLIGHT (the defaults, 1000 x 10, are exactly that)."""
    return max(1, min(settings.worker_concurrency, PUSHES_IN_FLIGHT // settings.max_devices_per_pass))


async def run_worker(
    worker: Worker, stop: asyncio.Event, settings: Settings | None = None, programs: Mapping[str, Program] | None = None
) -> None:
    """Deliver until `stop`, then close the worker's channels. With settings and programs, the
    Google Wallet classes are ensured beside it (inserted, or patched when the template changed):
    a slow or unreachable Google must not hold back the other channels' pushes."""
    side: list[asyncio.Task[Any]] = []
    google = worker.channels.get(GOOGLE, ANY)
    if isinstance(google, GoogleWalletChannel) and settings is not None and programs is not None:
        side.append(asyncio.create_task(ensure_classes(google, settings, programs), name="google-classes"))
    if settings is not None:
        # every worker sweeps: the sweeps are bounded batches and idempotent, so several never clash
        side.append(asyncio.create_task(Retention(worker.store, settings).run_forever(stop), name="retention"))
    try:
        await worker.run_forever(stop)
    finally:
        for task in side:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await worker.close()


async def run_standalone_worker(settings: Settings, on_worker: Callable[[Worker], None] | None = None) -> int:
    """`python -m cli worker`: the worker as a process of its own, until SIGINT/SIGTERM. `on_worker`
    sees the worker before it starts (the CLI serves its metrics with it)."""
    store = await open_store(settings.database_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    programs = load_programs(settings.templates_dir)
    worker = build_worker(settings, store, programs=programs)
    if on_worker is not None:
        on_worker(worker)
    log.info(
        "push worker %s started (%s)", worker.consumer, "dry run" if settings.push_dry_run else settings.apns_endpoint
    )
    # campaign and message jobs run beside the pushes they make (the web processes run none on Redis)
    fanout = LedgerIntake(store, programs, settings.pass_type_id, google=settings.google.enabled).fanout
    geo = GeoService(store, programs, fanout)
    runner = build_runner(settings, geo, worker.consumer)
    geo_task = asyncio.create_task(runner.run_forever(stop), name="geo-runner")
    # import jobs whose web process died, on a store that lists them (service/imports.py)
    imports = ImportRunner(store, programs, geo=geo, google=settings.google.enabled)
    import_task = asyncio.create_task(imports.run_forever(stop), name="import-runner")
    try:
        await run_worker(worker, stop, settings, programs)
    finally:
        stop.set()
        for task in (geo_task, import_task):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await store.close()
    return 0


async def send_test_push(settings: Settings, token: str) -> PushResult:
    """One pass-update push to `token` now, through the channel the worker would use; journaled."""
    store = await open_store(settings.database_url)
    channel: Channel = DryRunChannel() if settings.push_dry_run else apns_channel(settings)
    try:
        [result] = await channel.deliver([PassPush(token)])
        await store.record_push(
            {
                "kind": "test_push",
                "channel": channel.name,
                "outcome": result.status,
                "dry_run": channel.dry_run,
                "token": token_hint(token),
            },
            time.time(),
            JOURNAL_KEEP,
        )
    finally:
        await channel.aclose()
        await store.close()
    return result
