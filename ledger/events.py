"""Reading one posted ledger event into a LedgerEvent, or saying exactly what is wrong with it.

Whatever the envelope reader (ledger/batch.py) lets through lands here, one event at a time: every rule
an event breaks, including strings no store could encode, is an EventError for that event alone."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from cards.bounds import POINTS_MAX, VERSION_MAX
from cards.numbers import ACCOUNT_PATTERN
from cards.text import SURROGATE_MESSAGE, has_lone_surrogate, text_problem
from ledger.batch import HugeNumber
from ledger.decide import LedgerEvent

MAX_EVENTS = 1000
MESSAGE_MAX = 500
# whole-string matches (fullmatch): `$` alone also matches before a trailing newline
_ID_RE = re.compile(r"[\x21-\x7e]{1,128}")
_CARD_RE = re.compile(r"[0-9]{16}")
_ACCOUNT_RE = re.compile(ACCOUNT_PATTERN)


class EventError(ValueError):
    pass


def _int(data: dict[str, Any], name: str, *, required: bool, minimum: int, maximum: int, label: str = "") -> int | None:
    value = data.get(name)
    label = label or name
    if value is None:
        if required:
            raise EventError(f"{label} is required")
        return None
    if isinstance(value, HugeNumber):
        raise EventError(f"{label} is out of range: {minimum} to {maximum}")
    # bool is an int in Python, and 1.0 is a float in JSON: neither is a count or a version
    if isinstance(value, bool) or not isinstance(value, int):
        raise EventError(f"{label} must be an integer")
    if value < minimum:
        raise EventError(f"{label} must be at least {minimum}")
    if value > maximum:
        raise EventError(f"{label} is out of range: {minimum} to {maximum}")
    return value


def _str(data: dict[str, Any], name: str, max_len: int) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise EventError(f"{name} must be a non-empty string")
    if len(value) > max_len:
        raise EventError(f"{name} is longer than {max_len} characters")
    return value


_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,63}")


def _refuse_unencodable(raw: dict[str, Any]) -> None:
    # Checked before anything else, on every string value of the event and of its objects, so that no
    # field, today's or one added later, can carry a string the stores fail to encode once it has passed.
    pending: list[tuple[str, Any]] = list(raw.items())
    while pending:
        name, value = pending.pop(0)
        if isinstance(value, str) and has_lone_surrogate(value):
            # the answer names the field, unless its name is itself something we would not echo
            raise EventError(f"{name if _FIELD_NAME.fullmatch(name) else 'a field'}: {SURROGATE_MESSAGE}")
        if isinstance(value, dict):
            pending.extend((f"{name}.{key}", inner) for key, inner in value.items())


def event_id(raw: Any) -> str | None:
    """The event's id if it has a usable one (for reporting an invalid event by id)."""
    ident = raw.get("id") if isinstance(raw, dict) else None
    if isinstance(ident, str) and _ID_RE.fullmatch(ident):
        return ident
    return None


def parse_event(raw: Any, tier_keys: frozenset[str]) -> LedgerEvent:
    if not isinstance(raw, dict):
        raise EventError("an event must be an object")
    _refuse_unencodable(raw)
    ident = event_id(raw)
    if ident is None:
        raise EventError("id is required: 1 to 128 printable characters")
    card = raw.get("card")
    account = raw.get("account")
    if card is None and account is None:
        raise EventError("card or account is required")
    if card is not None and (not isinstance(card, str) or not _CARD_RE.fullmatch(card)):
        raise EventError("card must be a 16-digit card number")
    if account is not None and (not isinstance(account, str) or not _ACCOUNT_RE.fullmatch(account)):
        raise EventError("account is malformed")
    version = _int(raw, "version", required=True, minimum=1, maximum=VERSION_MAX)
    balance = _int(raw, "balance", required=True, minimum=0, maximum=POINTS_MAX)
    pending = _int(raw, "pending", required=False, minimum=0, maximum=POINTS_MAX)
    tier = _str(raw, "tier", 32)
    if tier is not None and tier not in tier_keys:
        raise EventError(f"tier {tier!r} is not a tier of any program")
    message = _str(raw, "message", MESSAGE_MAX)
    # the pass's change notification and back field: several lines are fine, control characters are not
    problem = text_problem(message, multiline=True) if message is not None else None
    if problem is not None:
        raise EventError(f"message: {problem}")
    expiring_points = expiring_date = None
    expiring = raw.get("expiring")
    if expiring is not None:
        if not isinstance(expiring, dict):
            raise EventError("expiring must be an object with points and date")
        expiring_points = _int(
            expiring, "points", required=True, minimum=0, maximum=POINTS_MAX, label="expiring.points"
        )
        text = expiring.get("date")
        if not isinstance(text, str):
            raise EventError("expiring.date must be YYYY-MM-DD")
        try:
            expiring_date = date.fromisoformat(text).isoformat()
        except ValueError:
            raise EventError("expiring.date must be YYYY-MM-DD") from None
        if len(text) != 10:
            raise EventError("expiring.date must be YYYY-MM-DD")
    occurred_at = _str(raw, "occurred_at", 40)
    if occurred_at is not None:
        try:
            parsed = datetime.fromisoformat(occurred_at.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise EventError("occurred_at must be an RFC 3339 timestamp") from None
        if parsed.tzinfo is None:
            raise EventError("occurred_at must carry a time zone offset")
    assert version is not None and balance is not None
    return LedgerEvent(
        id=ident,
        version=version,
        balance=balance,
        card_number=card,
        account=account if card is None else None,
        tier=tier,
        pending=pending,
        expiring_points=expiring_points,
        expiring_date=expiring_date,
        message=message,
        occurred_at=occurred_at,
    )
