"""The channel port: what the worker hands a delivery channel and what it gets back.

Like an httpx transport, a channel has two methods: `deliver` takes a batch of pushes and
answers one PushResult per push, in order; `aclose` releases its connections. Batch-shaped so
that a relay taking many tokens per call can make one call per batch; a channel sending one
request per push sends them concurrently. A channel maps its service's answers into
PushResult at its own boundary (push/results.py) and never raises for a push that failed.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, TypeAlias

from push.results import PushResult


@dataclass(frozen=True, slots=True)
class PassPush:
    """Tell one device that a pass of this channel's pass type changed (an empty push).
    `service_url`: where the device's app asked its pushes to go (PassWallet's pushServiceUrl)."""

    token: str
    service_url: str | None = None


@dataclass(frozen=True, slots=True)
class AlertPush:
    """A visible alert to one companion-app install."""

    token: str
    title: str
    body: str
    data: Mapping[str, str] = field(default_factory=dict)


Push: TypeAlias = PassPush | AlertPush


class Channel(abc.ABC):
    """One way out. `name` labels it in logs, metrics, pauses and the push journal."""

    name: str
    # True for a channel that sends nothing (dev): the journal marks its records as dry run.
    dry_run: ClassVar[bool] = False

    @abc.abstractmethod
    async def deliver(self, pushes: Sequence[Push]) -> list[PushResult]:
        """One result per push, in order."""

    async def aclose(self) -> None:  # noqa: B027 - optional for channels that hold nothing
        """Release connections and threads; the channel is not used afterwards."""


# Route keys: (client, scope). Pass updates use (the registration's client, pass type id);
# companion-app alerts use ("app:android" | "app:ios", ANY).
ANY = "*"
ChannelKey: TypeAlias = tuple[str, str]


class Channels:
    """The worker's channel table, like httpx's `mounts`: the channel for (client, scope),
    falling back to (client, ANY)."""

    def __init__(self, routes: Mapping[ChannelKey, Channel]) -> None:
        self._routes = dict(routes)

    def get(self, client: str, scope: str) -> Channel | None:
        return self._routes.get((client, scope)) or self._routes.get((client, ANY))

    def all(self) -> list[Channel]:
        """Each distinct channel once (one may serve several keys)."""
        unique: dict[int, Channel] = {}
        for channel in self._routes.values():
            unique.setdefault(id(channel), channel)
        return list(unique.values())

    async def aclose(self) -> None:
        for channel in self.all():
            await channel.aclose()
