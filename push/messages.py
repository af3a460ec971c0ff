"""The registry of outbox message kinds: kind -> how its stored fields become the message again
and which handler delivers it. Adding a kind is one module in push/kinds/ and one line here.

The store adapters keep and return an entry's flat string fields as they are and never look
inside them; the worker turns a claimed entry back into its message with `decode` and hands a
batch of them to the kind's handler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from push.batch import Batch, EntryState
from push.kinds import app_alert, enroll_webhook, google_object, google_voucher, pass_update, pass_void
from push.kinds.app_alert import AppAlert
from push.kinds.base import Message, MessageError
from push.kinds.enroll_webhook import EnrollWebhook
from push.kinds.google_object import GoogleObject
from push.kinds.google_voucher import GoogleVoucher
from push.kinds.pass_update import PassUpdate
from push.kinds.pass_void import PassVoid
from store.port import NewEntry

__all__ = [
    "KINDS",
    "AppAlert",
    "EnrollWebhook",
    "GoogleObject",
    "GoogleVoucher",
    "Kind",
    "Message",
    "MessageError",
    "PassUpdate",
    "PassVoid",
    "decode",
    "entry",
]


@dataclass(frozen=True)
class Kind:
    decode: Callable[[Mapping[str, str]], Message]
    # Any: each handler takes its own message type, which the registry line pairs correctly.
    handle: Callable[[list[tuple[EntryState, Any]], Batch], Awaitable[None]]


KINDS: dict[str, Kind] = {
    PassUpdate.KIND: Kind(PassUpdate.from_fields, pass_update.handle),
    PassVoid.KIND: Kind(PassVoid.from_fields, pass_void.handle),
    AppAlert.KIND: Kind(AppAlert.from_fields, app_alert.handle),
    GoogleObject.KIND: Kind(GoogleObject.from_fields, google_object.handle),
    GoogleVoucher.KIND: Kind(GoogleVoucher.from_fields, google_voucher.handle),
    EnrollWebhook.KIND: Kind(EnrollWebhook.from_fields, enroll_webhook.handle),
}


def decode(kind: str, fields: Mapping[str, str]) -> Message:
    """The message a claimed entry holds; MessageError for an unknown kind or bad fields."""
    found = KINDS.get(kind)
    if found is None:
        raise MessageError(f"unknown kind {kind!r}")
    return found.decode(fields)


def entry(message: Message) -> NewEntry:
    """What the store is asked to enqueue for `message`."""
    return NewEntry(kind=message.KIND, fields=message.to_fields(), coalesce_key=message.coalesce_key())
