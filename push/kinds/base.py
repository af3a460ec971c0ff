"""What every kind of outbox message shares: the message protocol, its errors, field reading."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Protocol, TypeAlias

Fields: TypeAlias = dict[str, str]


class MessageError(ValueError):
    """Stored fields that do not make a message of their kind (a damaged or foreign entry)."""


class Message(Protocol):
    KIND: ClassVar[str]

    def coalesce_key(self) -> str | None: ...

    def to_fields(self) -> Fields: ...


def required(fields: Mapping[str, str], name: str) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or not value:
        raise MessageError(f"field {name!r} is missing")
    return value
