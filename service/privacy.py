"""Data-subject requests (SPEC "Members and privacy"): what is stored about a member, and erasure.

Erasure keeps the card number and ledger figures (accounting) and removes the rest where it lives:
the store erases the card's personal data, consents, phone index, app tokens and alert history in
one commit (Store.erase_member) and queues the void of its passes; the worker pushes the voided
Apple pass to every device and then drops their registrations (push/kinds/pass_void.py) and marks
the Google object inactive (push/kinds/google_object.py renders an erased card so). The card's
vouchers are voided the same way. Asking again changes nothing and answers the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from cards.model import Card
from push.kinds.google_object import GoogleObject
from push.kinds.google_voucher import GoogleVoucher
from push.kinds.pass_void import PassVoid
from push.messages import entry
from push.results import token_hint
from push.worker import JOURNAL_KEEP
from store.port import NewEntry, Store, Voucher, fixed_fanout

_VOUCHER_ROUNDS = 5  # compare-and-set attempts per voucher while something else changes it


class Privacy:
    def __init__(
        self,
        store: Store,
        pass_type_id: str,
        *,
        google_object_id: Callable[[Card], str] | None = None,
        wakeup: asyncio.Event | None = None,
    ) -> None:
        self.store = store
        self.pass_type_id = pass_type_id
        # card -> its Google Wallet object id; None while Google Wallet is off
        self.google_object_id = google_object_id
        self.wakeup = wakeup

    # -- erasure ----------------------------------------------------------------------------------
    def _void_entries(self, serial: str, google: NewEntry | None) -> list[NewEntry]:
        entries = [entry(PassVoid(self.pass_type_id, serial))]
        if google is not None:
            entries.append(google)
        return entries

    async def erase(self, number: str, now: float) -> dict[str, Any] | None:
        """None: no such card. Otherwise what was done (the same answer when asked again)."""
        google = self.google_object_id is not None

        def fanout(card: Card) -> Sequence[NewEntry]:
            return self._void_entries(card.serial, entry(GoogleObject(card.serial)) if google else None)

        erasure = await self.store.erase_member(number, now, fanout)
        if erasure is None:
            return None
        voided = [await self._void_voucher(v, now, google) for v in await self.store.vouchers_of_card(number)]
        if self.wakeup is not None:
            self.wakeup.set()
        card = erasure.card
        return {
            "card": card.number,
            "erased": erasure.erased,
            "erased_at": card.erased_at,
            "vouchers_voided": sum(voided),
            "devices": await self.store.count_registrations(card.serial),
        }

    async def _void_voucher(self, voucher: Voucher | None, now: float, google: bool) -> bool:
        """Void one voucher of an erased member (True when this call voided it). A voucher voided
        before (a redeemed certificate) still has its devices told and dropped."""
        for _ in range(_VOUCHER_ROUNDS):
            if voucher is None:
                return False
            entries = self._void_entries(voucher.serial, entry(GoogleVoucher(voucher.serial)) if google else None)
            if voucher.voided:
                if await self.store.count_registrations(voucher.serial):
                    await self.store.enqueue(entries[:1], now)
                return False
            stored = await self.store.update_voucher(
                replace(voucher, voided=True), voucher.tag, now, fixed_fanout(entries)
            )
            if stored is not None:
                return True
            voucher = await self.store.get_voucher(voucher.kind, voucher.id)
        raise RuntimeError("the voucher kept changing")

    # -- export -----------------------------------------------------------------------------------
    async def export(self, number: str, now: float) -> dict[str, Any] | None:
        """Everything stored about the member of card `number` (None: no such card). Secrets the
        service holds for the member's devices (pass auth token, app token, push tokens) are shown
        only as hints: they are credentials, not data about the member."""
        card = await self.store.get_card(number)
        if card is None:
            return None
        store = self.store
        registrations = await store.get_registrations(card.serial)
        vouchers = await store.vouchers_of_card(number)
        exported: dict[str, Any] = {
            "exported_at": now,
            "card": _card_view(card),
            "consents": [c.to_dict() for c in await store.consents(number)],
            "devices": [
                {
                    "device": r.device_id,
                    "client": r.client,
                    "push_token": token_hint(r.push_token),
                    "updated_at": r.updated_at,
                }
                for r in registrations
            ],
            "app_tokens": [
                {"platform": t.platform, "token": token_hint(t.token), "updated_at": t.updated_at}
                for t in await store.app_tokens(number)
            ],
            "alerts": [
                {"at": a.at, "campaign": a.campaign, "store": a.store} for a in await store.alert_records(number)
            ],
            "vouchers": [_voucher_view(v) for v in vouchers],
            "pushes": await self._pushes({card.serial, *(v.serial for v in vouchers)}),
        }
        if self.google_object_id is not None:
            object_id = self.google_object_id(card)
            state = await store.get_google_state(card.serial)
            exported["google_wallet"] = {
                "object_id": object_id,
                "events": [{"event": e, "at": at} for e, at in await store.google_installs(object_id)],
                "synced": state.to_dict() if state is not None else None,
            }
        return exported

    async def _pushes(self, serials: set[str]) -> list[dict[str, Any]]:
        # the journal is bounded (JOURNAL_KEEP records): reading it whole is a bounded read
        return [r for r in await self.store.list_pushes(JOURNAL_KEEP) if r.get("serial") in serials]


def _card_view(card: Card) -> dict[str, Any]:
    view = card.to_dict()
    view.pop("auth_token")
    view["app_token"] = bool(card.app_token)  # whether the companion app has access; never the secret
    return view


def _voucher_view(voucher: Voucher) -> dict[str, Any]:
    return {
        "kind": voucher.kind,
        "id": voucher.id,
        "serial": voucher.serial,
        "voided": voucher.voided,
        "data": voucher.data,
        "created_at": voucher.created_at,
        "modified_at": voucher.modified_at,
    }
