"""The channel that sends nothing (dev, WALLET_PUSH_DRY_RUN=1): every push is "ok".

The MockTransport of the channels: the worker journals its pushes like any other channel's,
with `dry_run` set in the record, so /v1/admin/pushes shows what would have been sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from push.channels.base import Channel, Push
from push.results import OK, PushResult


class DryRunChannel(Channel):
    dry_run: ClassVar[bool] = True

    def __init__(self, name: str = "dry_run") -> None:
        self.name = name

    async def deliver(self, pushes: Sequence[Push]) -> list[PushResult]:
        return [OK] * len(pushes)
