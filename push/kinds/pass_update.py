"""`pass_update`: one pass changed; every device registered for it is told to fetch it again.

The entry names the pass, not the devices: the handler expands it to the registrations current
at delivery and reads the pass's tag then, so a commit costs the same whatever the number of
devices, a device registered after the commit is pushed too, and a device already told of this
(or a newer) change is not told again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import ClassVar

from push.batch import Batch, EntryState
from push.channels.base import Channel, PassPush
from push.kinds.base import Fields, required
from push.results import PushResult
from store.port import DeviceTarget, PassKey, PushMark


@dataclass(frozen=True, slots=True)
class PassUpdate:
    KIND: ClassVar[str] = "pass_update"

    pass_type_id: str
    serial: str

    def coalesce_key(self) -> str:
        # While one waits unclaimed, a later change of the same pass needs no second entry:
        # the handler reads the pass's latest tag when it delivers.
        return json.dumps([self.KIND, self.pass_type_id, self.serial], separators=(",", ":"))

    def to_fields(self) -> Fields:
        return {"pass_type_id": self.pass_type_id, "serial": self.serial}

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> PassUpdate:
        return cls(pass_type_id=required(fields, "pass_type_id"), serial=required(fields, "serial"))


async def handle(items: list[tuple[EntryState, PassUpdate]], batch: Batch) -> None:
    await push_devices(items, batch)


async def push_devices(items: Sequence[tuple[EntryState, PassUpdate]], batch: Batch, *, forget: bool = False) -> None:
    """Tell every device of each pass that has not seen its current tag. With `forget` (a voided
    pass, push/kinds/pass_void.py) each device's registration is dropped once it was told, or once
    telling it failed for good: nothing more will ever be pushed to it."""
    keys: list[PassKey] = [(message.pass_type_id, message.serial) for _, message in items]
    targets = await batch.store.pass_targets(keys)
    # Two entries of one pass in a batch (one claimed earlier, retried) push each device once.
    seen: set[tuple[str, str, str]] = set()
    for state, message in items:
        target = targets.get((message.pass_type_id, message.serial))
        if target is None or not target.tag:
            continue  # no such pass (any more): nothing to tell anyone
        for device in target.devices:
            key = (device.device_id, message.pass_type_id, message.serial)
            if device.pushed_tag >= target.tag or key in seen:
                batch.counters["skipped"] += 1  # already told of this (or a newer) change
                if forget and key not in seen:
                    await _forget(batch, message, device)
                continue
            seen.add(key)
            # The app that registered decides the way out: APNs for Apple Wallet, its maker's
            # relay for an Android pass app.
            channel = batch.channel(state, device.client, message.pass_type_id)
            if channel is not None:
                push = PassPush(device.push_token, service_url=device.push_service_url)
                # a partial, not a closure: one object per push on the hot path
                on_result = partial(_on_result, batch, state, message, device, target.tag, forget)
                batch.send(channel, push, on_result)


async def _forget(batch: Batch, message: PassUpdate, device: DeviceTarget) -> None:
    await batch.store.unregister_device(device.device_id, message.pass_type_id, message.serial, batch.now)


async def _on_result(
    batch: Batch,
    state: EntryState,
    message: PassUpdate,
    device: DeviceTarget,
    tag: int,
    forget: bool,
    result: PushResult,
    channel: Channel,
) -> None:
    token = device.push_token
    batch.count(device.client, result.status)
    if forget and result.status in ("ok", "invalid_token", "failed"):
        # told, or never can be: the registration (and its push token) goes; no mark is left behind
        await _forget(batch, message, device)
        if result.status == "ok":
            batch.delivered()
    elif result.status == "ok":
        batch.mark(PushMark(device.device_id, message.pass_type_id, message.serial, tag))
    elif result.status == "invalid_token":
        # Only if the device has not re-registered (possibly with a new token) since the
        # service saw the token die.
        before = result.timestamp if result.timestamp is not None else batch.now
        await batch.store.remove_registration_if_stale(
            device.device_id, message.pass_type_id, message.serial, token, before
        )
        batch.invalid(state, token, result)
    else:
        batch.not_delivered(state, channel, result)
    batch.journal(
        state,
        channel,
        result,
        token,
        pass_type_id=message.pass_type_id,
        serial=message.serial,
        device_id=device.device_id,
        client=device.client,
        tag=tag,
    )
