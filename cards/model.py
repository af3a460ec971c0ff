"""The card entity: what a loyalty card is, independent of storage and of wallet format."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, TypeAlias

# One pass location as the card keeps it: latitude, longitude, the lock-screen text, and the
# radius in metres its campaign asked for (geo/evaluate.py decides them).
Spot: TypeAlias = tuple[float, float, str, int]


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
    `modified_at` is whole unix seconds: it never moves back, stays at most a few seconds ahead of the
    clock, and with `last_modified` and `unchanged_since` below, HTTP `Last-Modified`/`If-Modified-Since`
    (second resolution) never hides a change.
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
    # Geo (geo/evaluate.py): pass content derived from campaigns, and what it is derived from
    # beside the ledger's state. `locations` and `notice` are shown on the pass; the rest is not.
    locations: tuple[Spot, ...] = ()
    notice: str | None = None  # the latest announce or marketing message (a change message)
    notice_id: str | None = None  # what `notice` came from: "campaign:<ids>" or "message:<id>"
    announced: tuple[str, ...] = ()  # campaigns whose `announce` this card was shown, sorted
    area: tuple[float, float] | None = None  # last app ping, coarsened (geo/area.py)
    home_store: str | None = None  # the enrolment store's id
    app_token: str = ""  # the companion app's secret for this card ("" = none: no app access)
    # when the member's personal data was erased (DELETE /v1/members): the passes are void from
    # then on; 0 = never. The number and ledger figures stay for accounting.
    erased_at: int = 0

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
            "locations": [list(spot) for spot in self.locations],
            "notice": self.notice,
            "notice_id": self.notice_id,
            "announced": list(self.announced),
            "area": list(self.area) if self.area is not None else None,
            "home_store": self.home_store,
            "app_token": self.app_token,
            "erased_at": self.erased_at,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Card:
        values = dict(data)
        values["member"] = Member.from_dict(values["member"])
        values["extra"] = dict(values.get("extra") or {})
        values["locations"] = tuple(
            (float(lat), float(lon), str(text), int(radius)) for lat, lon, text, radius in values.get("locations") or ()
        )
        values["announced"] = tuple(values.get("announced") or ())
        area = values.get("area")
        values["area"] = (float(area[0]), float(area[1])) if area else None
        return cls(**values)


# -- modified_at, Last-Modified and If-Modified-Since ------------------------------------------
#
# HTTP dates have whole seconds, and Wallet asks `If-Modified-Since: <the Last-Modified it got>`, so a
# change must never keep the stamp of a version some device already holds: then its 304 would hide the
# change. Stepping one second per change guarantees that, but runs ahead of the clock without bound
# (1 000 changes in one second put Last-Modified 1 000 s into the future). So:
#
# 1. A change is stamped one second past the previous stamp, or the clock's second if later, but never
#    more than MODIFIED_AHEAD_MAX seconds ahead of the writer's clock; once there, it keeps the stamp it
#    has (it never goes back). The ledger stamps once per card per committed batch (ledger/plan.py), so
#    the events of one post cost one second at most, not one each.
# 2. A stamp is handed out as Last-Modified only while it is at most VALIDATOR_AHEAD_MAX seconds ahead of
#    the serving clock; a stamp further ahead goes out as (serving second + VALIDATOR_AHEAD_MAX), a date
#    older than the pass, which can only cost the device one more full download, never a missed change.
#    A stamp M handed out is <= serving second + 1, so a later change by a writer whose clock is less than
#    a second behind has second >= M - 2 and a cap >= M + 1: it steps past M. The stamp a device holds is
#    never given to a newer version, so its If-Modified-Since never matches a newer pass. (The two
#    seconds between the constants are that margin: processes on Redis run on different hosts' clocks.)
# 3. No 304 while the current stamp is further ahead than rule 2 would hand out: devices that still hold
#    a far-future Last-Modified served before these rules (or from before a clock stepped back) get the
#    pass again instead of a 304 that might hide a change made while the stamp stood still.

MODIFIED_AHEAD_MAX = 3
VALIDATOR_AHEAD_MAX = 1


def next_modified_at(previous: int, now: float) -> int:
    """The stamp of a change committed at `now` to a card stamped `previous` (rule 1 above)."""
    second = int(now)
    return max(previous, min(max(second, previous + 1), second + MODIFIED_AHEAD_MAX))


def last_modified(modified_at: int, now: float) -> int:
    """The Last-Modified (unix seconds) to send at `now` for a pass stamped `modified_at` (rule 2)."""
    return min(modified_at, int(now) + VALIDATOR_AHEAD_MAX)


def unchanged_since(modified_at: int, since: float, now: float) -> bool:
    """Whether `If-Modified-Since: since` may be answered 304 at `now` (rules 2 and 3)."""
    return modified_at <= int(now) + VALIDATOR_AHEAD_MAX and since >= modified_at
