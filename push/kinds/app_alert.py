"""`app_alert`: a visible alert to one companion-app install (FCM on Android, APNs alert on iOS),
through the channel routed for ("app:<platform>", ANY)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Literal, TypeAlias

from push.batch import Batch, EntryState, OnResult
from push.channels.base import ANY, AlertPush, Channel
from push.kinds.base import Fields, MessageError, required
from push.results import PushResult

AppPlatform: TypeAlias = Literal["android", "ios"]


@dataclass(frozen=True, slots=True)
class AppAlert:
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
        platform = required(fields, "platform")
        if platform not in ("android", "ios"):
            raise MessageError(f"unknown platform {platform!r}")
        try:
            data = json.loads(fields.get("data") or "{}")
        except ValueError:
            raise MessageError("field 'data' is not JSON") from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise MessageError("field 'data' must map names to strings")
        return cls(
            platform="android" if platform == "android" else "ios",
            token=required(fields, "token"),
            card_number=fields.get("card_number", ""),
            title=fields.get("title", ""),
            body=fields.get("body", ""),
            data=data,
        )


async def handle(items: list[tuple[EntryState, AppAlert]], batch: Batch) -> None:
    for state, message in items:
        channel = batch.channel(state, f"app:{message.platform}", ANY)
        if channel is not None:
            push = AlertPush(message.token, message.title, message.body, message.data)
            batch.send(channel, push, _on_result(batch, state, message))


def _on_result(batch: Batch, state: EntryState, message: AppAlert) -> OnResult:
    async def on_result(result: PushResult, channel: Channel) -> None:
        batch.count(f"app:{message.platform}", result.status)
        if result.status == "ok":
            batch.delivered()
        elif result.status == "invalid_token":
            await batch.store.delete_app_token(message.token)
            batch.invalid(state, message.token, result)
        else:
            batch.not_delivered(state, channel, result)
        batch.journal(state, channel, result, message.token, platform=message.platform, card=message.card_number[-4:])

    return on_result
