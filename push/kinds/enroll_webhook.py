"""`enroll_webhook`: a member who joined on the join page, announced to the ledger backend
(WALLET_ENROLL_WEBHOOK_URL) so it can open the account and post a welcome bonus.

The entry names the card and holds no personal data: the member's name, phone, e-mail and consents
are read from the card's record at delivery, so an erasure (DELETE /v1/members) reaches an
announcement still waiting, retried or dead-lettered alike: an erased card's is dropped unsent.
Nothing personal goes to logs or to the push journal, which records the card's last 4 digits only.
Routed through ("webhook:enroll", ANY) (service/push.py): 2xx is done,
5xx, 429 and timeouts are retried with backoff by the worker, any other 4xx is dead-lettered.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Final, cast

from push.batch import Batch, EntryState, OnResult
from push.channels.base import ANY, Channel, Push
from push.channels.webhook import WebhookPush
from push.kinds.base import Fields, MessageError, required
from push.results import PushResult
from store.port import Store

ENROLL_WEBHOOK: Final = "webhook:enroll"  # the client of the webhook route in the worker's table


@dataclass(frozen=True, slots=True)
class EnrollWebhook:
    KIND: ClassVar[str] = "enroll_webhook"

    card_number: str
    account: str
    program: str
    name: str
    phone: str
    email: str | None
    joined_at: float
    # each as the join page recorded it: {"kind", "channel", "granted", "version", "at"}
    consents: Sequence[Mapping[str, Any]] = field(default_factory=tuple)
    # the delivery's id, fixed when enqueued: the same on every retry (an outbox entry's own id is
    # not: Redis gives a retried entry a new stream id), so the receiver can drop a repeat
    delivery: str = ""
    source: str = "join"  # "join" (the join page) or "activate" (a pre-printed card)

    def coalesce_key(self) -> str:
        # one announcement per card: a second one waiting unclaimed would say the same
        return json.dumps([self.KIND, self.card_number], separators=(",", ":"))

    def to_fields(self) -> Fields:
        # no name, phone, e-mail or consents: the handler reads them from the card (module docstring)
        return {
            "card_number": self.card_number,
            "account": self.account,
            "program": self.program,
            "joined_at": repr(float(self.joined_at)),
            "delivery": self.delivery,
            "source": self.source,
        }

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> EnrollWebhook:
        try:
            joined_at = float(required(fields, "joined_at"))
            consents = json.loads(fields.get("consents") or "[]")
        except ValueError:
            raise MessageError("field 'joined_at' or 'consents' is malformed") from None
        if not isinstance(consents, list) or not all(isinstance(c, dict) for c in consents):
            raise MessageError("field 'consents' must be a list of objects")
        return cls(
            card_number=required(fields, "card_number"),
            account=required(fields, "account"),
            program=required(fields, "program"),
            name=fields.get("name", ""),
            phone=fields.get("phone", ""),
            email=fields.get("email") or None,
            joined_at=joined_at,
            consents=tuple(consents),
            delivery=fields.get("delivery", ""),
            source=fields.get("source") or "join",
        )

    def body(self) -> dict[str, Any]:
        """The JSON the ledger backend receives."""
        return {
            "event": "member.joined",
            "source": self.source,
            "card": self.card_number,
            "account": self.account,
            "program": self.program,
            "member": {"name": self.name, "phone": self.phone, "email": self.email},
            "consents": [dict(c) for c in self.consents],
            "joined_at": self.joined_at,
        }


def encode_body(message: EnrollWebhook) -> bytes:
    """Compact UTF-8 JSON: the exact bytes that are signed and sent."""
    return json.dumps(message.body(), separators=(",", ":"), ensure_ascii=False).encode()


async def with_member(message: EnrollWebhook, store: Store) -> EnrollWebhook | None:
    """The announcement with the member's data as stored now; None when the card is gone or erased."""
    card = await store.get_card(message.card_number)
    if card is None or card.erased_at:
        return None
    consents = [c.to_dict() for c in await store.consents(card.number) if c.source == message.source]
    return replace(
        message, name=card.member.name, phone=card.member.phone or "", email=card.member.email, consents=consents
    )


async def handle(items: list[tuple[EntryState, EnrollWebhook]], batch: Batch) -> None:
    for state, stored in items:
        message = await with_member(stored, batch.store)
        if message is None:
            batch.counters["skipped"] += 1  # erased before it went out: there is nobody to announce
            continue
        channel = batch.channel(state, ENROLL_WEBHOOK, ANY)
        if channel is not None:
            # Push is the APNs/relay union of push/channels/base.py; the webhook channel takes WebhookPush.
            push = WebhookPush(message.delivery or state.entry.id, encode_body(message))
            batch.send(channel, cast(Push, push), _on_result(batch, state, message))


def _on_result(batch: Batch, state: EntryState, message: EnrollWebhook) -> OnResult:
    async def on_result(result: PushResult, channel: Channel) -> None:
        batch.count(ENROLL_WEBHOOK, result.status)
        if result.status == "ok":
            batch.delivered()
        else:
            batch.not_delivered(state, channel, result)
        batch.journal(state, channel, result, "", card=message.card_number[-4:], program=message.program)

    return on_result
