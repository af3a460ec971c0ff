"""`pass_update`: one pass changed; every device registered for it is told to fetch it again.

The entry names the pass, not the devices: the handler expands it to the registrations current
at delivery and reads the pass's tag then, so a commit costs the same whatever the number of
devices, a device registered after the commit is pushed too, and a device already told of this
(or a newer) change is not told again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
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
                continue
            seen.add(key)
            # The app that registered decides the way out: APNs for Apple Wallet, its maker's
            # relay for an Android pass app.
            channel = batch.channel(state, device.client, message.pass_type_id)
            if channel is not None:
                push = PassPush(device.push_token, service_url=device.push_service_url)
                # a partial, not a closure: one object per push on the hot path
                batch.send(channel, push, partial(_on_result, batch, state, message, device, target.tag))


async def _on_result(
    batch: Batch,
    state: EntryState,
    message: PassUpdate,
    device: DeviceTarget,
    tag: int,
    result: PushResult,
    channel: Channel,
) -> None:
    token = device.push_token
    batch.count(device.client, result.status)
    if result.status == "ok":
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
