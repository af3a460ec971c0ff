"""The card entity: what a loyalty card is, independent of storage and of wallet format."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class Member:
    name: str
    phone: str | None = None
    email: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "phone": self.phone, "email": self.email}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Member:
        return cls(name=data["name"], phone=data.get("phone"), email=data.get("email"))


@dataclass(frozen=True)
class Card:
    """One member's card in one program.

    `version` is the ledger's version of the card state (0 at issue); `tag` is the store-wide
    update counter value of the card's last change (PassKit `lastUpdated` material);
    `modified_at` is whole unix seconds, strictly increasing per change so that HTTP
    `Last-Modified`/`If-Modified-Since` (second resolution) never hides a change.
    """

    number: str
    program: str
    account: str
    serial: str
    auth_token: str
    member: Member
    locale: str = "ru"
    balance: int = 0
    tier: str = "base"
    pending: int = 0
    expiring_points: int | None = None
    expiring_date: str | None = None
    last_message: str | None = None
    version: int = 0
    tag: int = 0
    created_at: int = 0
    modified_at: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def with_changes(self, **changes: Any) -> Card:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "program": self.program,
            "account": self.account,
            "serial": self.serial,
            "auth_token": self.auth_token,
            "member": self.member.to_dict(),
            "locale": self.locale,
            "balance": self.balance,
            "tier": self.tier,
            "pending": self.pending,
            "expiring_points": self.expiring_points,
            "expiring_date": self.expiring_date,
            "last_message": self.last_message,
            "version": self.version,
            "tag": self.tag,
            "created_at": self.created_at,
            "modified_at": self.modified_at,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Card:
        values = dict(data)
        values["member"] = Member.from_dict(values["member"])
        values["extra"] = dict(values.get("extra") or {})
        return cls(**values)


def next_modified_at(previous: int, now: float) -> int:
    """Whole seconds, at least one past the previous change (see Card.modified_at)."""
    return max(int(now), previous + 1)
