"""Reading the JSON envelope of a ledger post, `{"events": [...]}`, into its list of raw events.

Other routes parse with orjson, which refuses a whole body over one lone UTF-16 surrogate or an integer
it cannot hold. Here that would sink a signed batch over one event, and the ledger would retry it forever,
so the envelope is read leniently (the standard parser takes both) and each event is judged on its own
by ledger/events.py, which answers such an event under `invalid`. What cannot be read at all (not UTF-8,
not JSON, nested past the parser's recursion limit, not the envelope) refuses the post."""

from __future__ import annotations

import json
from typing import Any, Final

# An integer literal longer than this is never a valid figure (those stay below 2**53, 16 digits), and
# int() refuses literals over 4 300 digits, which would refuse the whole post; such a number is read as
# HUGE_NUMBER, so that its event alone is refused, as out of range.
_INT_DIGITS = 40


class HugeNumber:
    """The value of an integer literal too long to be any figure (see _INT_DIGITS)."""

    def __repr__(self) -> str:
        return "HUGE_NUMBER"


HUGE_NUMBER: Final = HugeNumber()


class BatchError(ValueError):
    """The post cannot be read as an envelope of events; the message says why (for a 400)."""


def _integer(literal: str) -> int | HugeNumber:
    return int(literal) if len(literal) <= _INT_DIGITS else HUGE_NUMBER


def read_batch(raw: bytes) -> list[Any]:
    """The raw events of a post, unchecked (ledger/events.py checks each)."""
    try:
        body = json.loads(raw.decode("utf-8"), parse_int=_integer)
    except UnicodeDecodeError:
        raise BatchError("the body is not valid UTF-8") from None
    except RecursionError:
        raise BatchError("the body is nested too deeply") from None
    except json.JSONDecodeError as exc:
        # its message is a reason and a position, never a piece of the body
        raise BatchError(f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict) or not isinstance(body.get("events"), list):
        raise BatchError('the body must be {"events": [...]}')
    events: list[Any] = body["events"]
    return events
