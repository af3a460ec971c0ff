"""Typed outbox messages: one frozen dataclass per kind of delivery work, and their registry.

A message knows its kind, its coalescing key and how to become flat string fields and back.
The store adapters keep and return those fields as they are and never look inside them; the
worker turns a claimed entry back into its message with `decode`. Adding a kind is one class
here plus one line in `KINDS` (and a handler in the worker's table).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Literal, Protocol, TypeAlias

from store.port import NewEntry

Fields: TypeAlias = dict[str, str]


class MessageError(ValueError):
    """Stored fields that do not make a message of their kind (a damaged or foreign entry)."""


class Message(Protocol):
    KIND: ClassVar[str]

    def coalesce_key(self) -> str | None: ...

    def to_fields(self) -> Fields: ...


def _field(fields: Mapping[str, str], name: str) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or not value:
        raise MessageError(f"field {name!r} is missing")
    return value


@dataclass(frozen=True, slots=True)
class PassUpdate:
    """One pass changed: every device registered for it is told to fetch it again.

    The entry names the pass, not the devices: the worker expands it to the registrations
    current at delivery, and reads the pass's tag then, so a commit costs the same whatever
    the number of devices, and a device registered after the commit is pushed too.
    """

    KIND: ClassVar[str] = "pass_update"

    pass_type_id: str
    serial: str

    def coalesce_key(self) -> str:
        # While one waits unclaimed, a later change of the same pass needs no second entry:
        # the worker reads the pass's latest tag when it delivers.
        return json.dumps([self.KIND, self.pass_type_id, self.serial], separators=(",", ":"))

    def to_fields(self) -> Fields:
        return {"pass_type_id": self.pass_type_id, "serial": self.serial}

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> PassUpdate:
        return cls(pass_type_id=_field(fields, "pass_type_id"), serial=_field(fields, "serial"))


AppPlatform: TypeAlias = Literal["android", "ios"]
_PLATFORMS: frozenset[str] = frozenset({"android", "ios"})


@dataclass(frozen=True, slots=True)
class AppAlert:
    """A visible alert to one companion-app install (FCM on Android, APNs alert on iOS)."""

    KIND: ClassVar[str] = "app_alert"

    platform: AppPlatform
    token: str
    card_number: str
    title: str
    body: str
    data: Mapping[str, str] = field(default_factory=dict)

    def coalesce_key(self) -> None:
        return None  # every alert is its own event

    def to_fields(self) -> Fields:
        return {
            "platform": self.platform,
            "token": self.token,
            "card_number": self.card_number,
            "title": self.title,
            "body": self.body,
            "data": json.dumps(dict(self.data), separators=(",", ":"), ensure_ascii=False),
        }

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> AppAlert:
        platform = _field(fields, "platform")
        if platform not in _PLATFORMS:
            raise MessageError(f"unknown platform {platform!r}")
        try:
            data = json.loads(fields.get("data") or "{}")
        except ValueError:
            raise MessageError("field 'data' is not JSON") from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise MessageError("field 'data' must map names to strings")
        return cls(
            platform="android" if platform == "android" else "ios",
            token=_field(fields, "token"),
            card_number=fields.get("card_number", ""),
            title=fields.get("title", ""),
            body=fields.get("body", ""),
            data=data,
        )


AnyMessage: TypeAlias = PassUpdate | AppAlert


class _Decoder(Protocol):
    def __call__(self, fields: Mapping[str, str], /) -> AnyMessage: ...


# kind -> how its stored fields become the message again
KINDS: dict[str, _Decoder] = {
    PassUpdate.KIND: PassUpdate.from_fields,
    AppAlert.KIND: AppAlert.from_fields,
}


def decode(kind: str, fields: Mapping[str, str]) -> AnyMessage:
    """The message a claimed entry holds; MessageError for an unknown kind or bad fields."""
    decoder = KINDS.get(kind)
    if decoder is None:
        raise MessageError(f"unknown kind {kind!r}")
    return decoder(fields)


def entry(message: Message) -> NewEntry:
    """What the store is asked to enqueue for `message`."""
    return NewEntry(kind=message.KIND, fields=message.to_fields(), coalesce_key=message.coalesce_key())
