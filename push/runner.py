"""Wiring the worker to settings: which senders (real or dry run), in-process or standalone."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from typing import Any

from cryptography.hazmat.primitives import serialization

from config.settings import Settings
from config.startup import Prepared
from passes.apple.certs import load_signing_material
from push.apns import ApnsSender
from push.dryrun import DryRunSender
from push.worker import Worker
from store.factory import open_store
from store.port import Store

log = logging.getLogger("wallet.push")


def client_cert_pem(settings: Settings) -> bytes:
    """Certificate + key as one unencrypted PEM, in memory: APNs certificate auth uses the same
    Pass Type ID certificate that signs passes, whether it came as PEM, encrypted PEM or .p12."""
    material = load_signing_material(settings.certs_dir, settings.pass_key_password)
    key = material.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
    # the intermediate rides along so the server can build the chain to its trusted root
    chain = material.cert.public_bytes(serialization.Encoding.PEM) + material.wwdr.public_bytes(serialization.Encoding.PEM)
    return chain + key


def build_pass_sender(settings: Settings, store: Store) -> Any:
    if settings.push_dry_run:
        return DryRunSender(store, pass_type_id=settings.pass_type_id)
    if settings.apns_key_file:
        with open(settings.apns_key_file, encoding="utf-8") as handle:
            key_p8 = handle.read()
        return ApnsSender(settings.pass_type_id, endpoint=settings.apns_endpoint, key_p8=key_p8,
                          key_id=settings.apns_key_id, team_id=settings.team_id, ca_file=settings.apns_ca_file)
    return ApnsSender(settings.pass_type_id, endpoint=settings.apns_endpoint,
                      client_cert_pem=client_cert_pem(settings), ca_file=settings.apns_ca_file)


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def build_worker(settings: Settings, store: Store, wakeup: asyncio.Event | None = None) -> Worker:
    sender = build_pass_sender(settings, store)
    return Worker(store, apns={settings.pass_type_id: sender}, fcm=None, consumer=consumer_name(),
                  lease_seconds=settings.worker_lease_seconds, wakeup=wakeup)


async def start_worker(services: Any, stop: asyncio.Event) -> asyncio.Task:
    """The worker inside the web process (embedded SQLite: one command is enough)."""
    worker = build_worker(services.settings, services.store, services.outbox_wakeup)
    services.worker = worker
    return asyncio.create_task(_run(worker, stop), name="push-worker")


async def _run(worker: Worker, stop: asyncio.Event) -> None:
    try:
        await worker.run_forever(stop)
    finally:
        await worker.close()


async def run_standalone_worker(prepared: Prepared) -> int:
    settings = prepared.settings
    store = await open_store(settings.database_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    worker = build_worker(settings, store)
    log.info("push worker %s started (%s)", worker.consumer, "dry run" if settings.push_dry_run else settings.apns_endpoint)
    try:
        await _run(worker, stop)
    finally:
        await store.close()
    return 0


async def send_test_push(prepared: Prepared, token: str) -> int:
    settings = prepared.settings
    store = await open_store(settings.database_url)
    sender = build_pass_sender(settings, store)
    try:
        result = await sender.send_pass_update(token)
    finally:
        await sender.close()
        await store.close()
    print(f"push {'recorded (dry run)' if settings.push_dry_run else 'sent'}: {result.status}"
          + (f" ({result.reason})" if result.reason else ""))
    return 0 if result.ok else 1
