"""`pass_void`: a pass voided by an erasure (DELETE /v1/members): every device holding it is told
once more, to fetch the voided pass, and then its registration (with the push token) is dropped.

Delivery is pass_update's (the devices current at delivery, the pass's tag then), with one change:
a device's registration is removed once it was told of the void or telling it failed for good, so
no push token of an erased member outlives the void push. A device that could not be reached yet
(a retry) keeps its registration until the retry tells it.
"""

from __future__ import annotations

from typing import ClassVar

from push.batch import Batch, EntryState
from push.kinds.pass_update import PassUpdate, push_devices


class PassVoid(PassUpdate):
    """A pass update of its own kind: the same fields, a coalescing key of its own (a void waiting
    does not swallow, nor is swallowed by, an ordinary update of the pass)."""

    __slots__ = ()
    KIND: ClassVar[str] = "pass_void"


async def handle(items: list[tuple[EntryState, PassVoid]], batch: Batch) -> None:
    await push_devices(items, batch, forget=True)
