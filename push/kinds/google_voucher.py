"""`google_voucher`: a voucher's Google Wallet object (GiftCardObject / OfferObject) is to show the
voucher's current state (passes/google/vouchers.py).

As `google_object` for cards, the entry names the voucher by serial only and the handler reads the
voucher at delivery, so a coalesced or retried entry carries the latest state. It goes out through
the route (GOOGLE_VOUCHER, the program) - in production a `VoucherChannel` beside the card channel,
sharing its REST client, its rate limit and its name (an auth pause stops both; one account). A sync
is idempotent: PATCH the object's state-bearing fields; 404 inserts it (and its class when Google
lacks that too). Vouchers change rarely (issued, redeemed), so nothing is remembered of what was
synced. Journal records carry the serial and the object id only: never the code or the PIN.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final, cast

from push.batch import Batch, EntryState
from push.channels.base import Channel, Push
from push.channels.google import GoogleWalletChannel
from push.channels.google_wallet import GoogleWalletResult
from push.kinds.base import Fields, required
from push.kinds.pass_update import PassUpdate
from push.results import OK, PushResult
from store.port import NewEntry, Voucher

log = logging.getLogger(__name__)

GOOGLE_VOUCHER: Final = "google_voucher"  # the client of the voucher route in the worker's table
# What PATCH brings up to date: the rest (ids, code, PIN) is fixed at insert
SYNCED_FIELDS: Final = ("state", "validTimeInterval", "textModulesData", "merchantLocations", "balance")

# voucher -> (its object body, its class body, the REST resources (class, object))
VoucherRender = Callable[[Voucher], tuple[dict[str, Any], dict[str, Any], tuple[str, str]]]


@dataclass(frozen=True, slots=True)
class GoogleVoucher:
    KIND: ClassVar[str] = "google_voucher"

    serial: str

    def coalesce_key(self) -> str:
        return json.dumps([self.KIND, self.serial], separators=(",", ":"))

    def to_fields(self) -> Fields:
        return {"serial": self.serial}

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> GoogleVoucher:
        return cls(serial=required(fields, "serial"))


def voucher_entries(pass_type_id: str, google: bool, serial: str) -> list[NewEntry]:
    """The outbox work of a created or changed voucher: its Apple pass to every device holding it,
    and its Google object while Google Wallet is on."""
    # imported here: push.messages imports this module for its registry line
    from push.messages import entry

    entries = [entry(PassUpdate(pass_type_id, serial))]
    if google:
        entries.append(entry(GoogleVoucher(serial)))
    return entries


@dataclass(frozen=True, slots=True)
class VoucherSync:
    voucher: Voucher


def _result(result: GoogleWalletResult, step: str) -> PushResult:
    reason = f"{step}: {result.reason or result.status}"
    if result.status in ("rate_limited", "server_error"):
        return PushResult("retry", reason, retry_after=result.retry_after)
    if result.status == "auth_error":
        return PushResult("auth_error", reason)
    return PushResult("failed", reason)


class VoucherChannel(Channel):
    """Vouchers' objects through the card channel's client and rate limit (`base`)."""

    def __init__(self, base: GoogleWalletChannel, render: VoucherRender) -> None:
        self.base = base
        self.render = render
        self.name = base.name

    def object_id(self, voucher: Voucher) -> str:
        return str(self.render(voucher)[0]["id"])

    async def deliver(self, pushes: Sequence[object]) -> list[PushResult]:
        return list(await asyncio.gather(*(self._deliver_one(push) for push in pushes)))

    async def aclose(self) -> None:
        """Nothing of its own: the client is the card channel's, closed with it."""

    async def _call(
        self, method: str, path: str, resource_id: str | None = None, body: Any = None
    ) -> GoogleWalletResult:
        client = self.base.client
        await client.ready()
        async with self.base.limiter.slot():
            # the client's generic request: its public methods speak only the loyalty resources
            return await client._call(method, path, resource_id, json=body)

    async def _deliver_one(self, push: object) -> PushResult:
        if not isinstance(push, VoucherSync):
            return PushResult("failed", f"not a voucher push: {type(push).__name__}")
        try:
            return await self._sync(push.voucher)
        except Exception as exc:  # a bug or a broken answer: tried again later, nothing secret logged
            log.warning("google wallet voucher sync failed: %s", type(exc).__name__)
            return PushResult("retry", type(exc).__name__)

    async def _sync(self, voucher: Voucher) -> PushResult:
        body, class_body, (class_resource, object_resource) = self.render(voucher)
        object_id = str(body["id"])
        fields = {key: body[key] for key in SYNCED_FIELDS if key in body}
        patched = await self._call("PATCH", f"/{object_resource}/{{}}", object_id, fields)
        if patched.ok:
            return OK
        if patched.status != "not_found":
            return _result(patched, "patch")
        inserted = await self._call("POST", f"/{object_resource}", None, body)
        if inserted.status == "not_found":  # its class is missing
            made = await self._call("POST", f"/{class_resource}", None, class_body)
            if made.status == "conflict":
                made = await self._call("PATCH", f"/{class_resource}/{{}}", str(class_body["id"]), class_body)
            if not made.ok:
                return _result(made, "insert class")
            inserted = await self._call("POST", f"/{object_resource}", None, body)
        if inserted.status == "conflict":  # inserted meanwhile by another worker: bring it up to date
            inserted = await self._call("PATCH", f"/{object_resource}/{{}}", object_id, fields)
        return OK if inserted.ok else _result(inserted, "insert")


async def handle(items: list[tuple[EntryState, GoogleVoucher]], batch: Batch) -> None:
    serials = list(dict.fromkeys(message.serial for _, message in items))
    found = await asyncio.gather(*(batch.store.get_voucher_by_serial(serial) for serial in serials))
    vouchers = dict(zip(serials, found, strict=True))
    seen: set[str] = set()
    for state, message in items:
        voucher = vouchers.get(message.serial)
        if voucher is None or message.serial in seen:
            batch.counters["skipped"] += 1
            continue
        seen.add(message.serial)
        channel = batch.channel(state, GOOGLE_VOUCHER, voucher.program)
        if channel is not None:
            # Push is the APNs/relay union; the voucher channel (or a dry run) takes VoucherSync
            batch.send(channel, cast(Push, VoucherSync(voucher)), _OnResult(batch, state, voucher))


class _OnResult:
    __slots__ = ("batch", "state", "voucher")

    def __init__(self, batch: Batch, state: EntryState, voucher: Voucher) -> None:
        self.batch, self.state, self.voucher = batch, state, voucher

    async def __call__(self, result: PushResult, channel: Channel) -> None:
        batch = self.batch
        batch.count(GOOGLE_VOUCHER, result.status)
        if result.status == "ok":
            batch.delivered()
        else:
            batch.not_delivered(self.state, channel, result)
        extra: dict[str, object] = {"serial": self.voucher.serial, "voucher": self.voucher.kind}
        if isinstance(channel, VoucherChannel):
            extra["object_id"] = channel.object_id(self.voucher)
        batch.journal(self.state, channel, result, "", **extra)
