"""The storage port: the one async interface every other module uses. Adapters: SQLite, Redis."""

from __future__ import annotations

import abc
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cards.model import Card
from geo.locations import StoreLocation
from ledger.decide import LedgerEvent, Outcome
from ledger.plan import EventCheck


class StoreError(Exception):
    """Base of the errors the port raises."""


class CardConflict(StoreError):
    """A card number or serial is taken, or the account already has a card in another program."""


# (pass_type_id, serial): one pass, as a pass-update entry names it
PassKey = tuple[str, str]


@dataclass(frozen=True)
class NewEntry:
    """Outbox work to add: its kind, its flat string fields (kept and returned as they are),
    and an optional coalescing key: while an entry with the same key waits unclaimed, adding
    another is a no-op. The store never looks inside `fields`."""

    kind: str
    fields: Mapping[str, str]
    coalesce_key: str | None = None


# The outbox entries a ledger commit adds for one changed card (its final state).
Fanout = Callable[[Card], Sequence[NewEntry]]


def no_fanout(card: Card) -> Sequence[NewEntry]:
    return ()


def fixed_fanout(entries: Sequence[NewEntry]) -> Fanout:
    """The same entries whatever the store hands the fanout (a voucher's work: the store may pass
    the voucher or its card)."""

    def fanout(_card: Any) -> Sequence[NewEntry]:
        return entries

    return fanout


# The client of registrations made before clients were told apart: they were all Apple Wallet.
DEFAULT_CLIENT = "apple"


@dataclass(frozen=True)
class DeviceTarget:
    """One device registered for a pass, as the worker needs it at delivery."""

    device_id: str
    push_token: str
    pushed_tag: int  # the tag last pushed to this device for this pass, 0 if none
    client: str = DEFAULT_CLIENT  # which app registered (push/clients.py): picks the channel
    push_service_url: str | None = None  # PassWallet's pushServiceUrl


@dataclass(frozen=True)
class PassTargets:
    """A pass at delivery time: its current tag (0 when no card has the serial) and devices."""

    tag: int
    devices: tuple[DeviceTarget, ...] = ()


@dataclass(frozen=True)
class PushMark:
    """`tag` was pushed to the device for the pass (kept at the maximum)."""

    device_id: str
    pass_type_id: str
    serial: str
    tag: int


@dataclass(frozen=True)
class Registration:
    device_id: str
    pass_type_id: str
    serial: str
    push_token: str
    updated_at: float
    client: str = DEFAULT_CLIENT
    push_service_url: str | None = None


@dataclass(frozen=True)
class LedgerResult:
    """Outcomes in input order, the final state of every card an accepted event changed, and
    for each INVALID outcome (by position) why."""

    outcomes: list[tuple[str, Outcome]]
    changed: list[Card] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OutboxEntry:
    """A claimed unit of delivery work: the kind and fields it was enqueued with
    (push/messages.py gives them meaning)."""

    id: str
    kind: str
    fields: dict[str, str]
    attempts: int = 0
    enqueued_at: float = 0.0


class GeoChanged(StoreError):
    """Campaigns or store locations changed (the geo generation moved) since the caller read the
    generation it passed: nothing was written; re-read the geo snapshot, re-derive and retry."""


# Derives a card's geo content (geo/evaluate.py) from its final state in a ledger commit.
Derive = Callable[[Card], Card]


@dataclass(frozen=True)
class CardUpdate:
    """A compare-and-set write of one card outside the ledger (geo re-evaluation, app pings).

    Written only while the stored card still has `expected_tag`. With `bump` (pass content
    changed) the card gets a new tag from the store counter, `modified_at` stepped as the ledger
    steps it (cards.model.next_modified_at), and `fanout(card)` is enqueued; without, only its data
    is replaced (tag and modified_at kept, nothing enqueued). `version` is never changed here: the
    stored card's version is kept whatever `card` says."""

    expected_tag: int
    card: Card
    bump: bool = True


@dataclass(frozen=True)
class UpdateResult:
    """Per update in order: the card as stored now, or None when its tag had moved (nothing
    written for it). `advanced`: the job step's cursor was saved (see Store.update_cards)."""

    cards: list[Card | None]
    advanced: bool = False


@dataclass(frozen=True)
class GeoJob:
    """Resumable work over one program's cards, in card-number order (service/geo.py runs it).

    kind "campaigns": re-evaluate every card (one per program, id "campaigns:<program>",
    restarted from the beginning by every campaign or store change of the program);
    kind "message": show `payload` (a marketing message) on the cards it segments."""

    id: str
    program: str
    kind: str
    payload: dict[str, Any]
    cursor: str  # the last card number done; "" = none yet
    created_at: float
    done: bool = False


@dataclass(frozen=True)
class JobStep:
    """Advance `job_id` to `cursor` (and mark it done with `done`) in the same commit as the
    card updates, only while `owner` holds the job's lease."""

    job_id: str
    owner: str
    cursor: str
    done: bool = False


@dataclass(frozen=True)
class AlertRecord:
    """An alert sent to a card's companion app (geo pings), for the per-day cap and cooldown."""

    at: float
    campaign: str
    store: str


@dataclass(frozen=True)
class Consent:
    """A member's answer to one consent question, as given (web/pages join and activation forms)."""

    kind: str  # "terms" (the program's terms) or "marketing"
    channel: str | None  # marketing: "sms", "email" or "push"; terms: None
    granted: bool
    version: str  # the version of the terms text shown (the program template's)
    at: float
    source: str = "join"  # where it was given: "join", "activate" or "import"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "channel": self.channel,
            "granted": self.granted,
            "version": self.version,
            "at": self.at,
            "source": self.source,
        }


@dataclass(frozen=True)
class Voucher:
    """A pass of its own beside a member's loyalty card: a gift certificate or an offer (issue 14).

    Its serial, auth token and tag work as a card's do in PassKit (registrations, serials updated
    since, pass targets): tags come from the same store-wide counter."""

    id: str  # the ledger's id, unique per kind: creating it again returns the stored one
    kind: str  # "certificate" or "offer"
    serial: str
    auth_token: str
    program: str
    card_number: str | None  # the holder's card
    data: dict[str, Any]  # kind-specific fields (code, pin, amount, currency, expires, terms, title, text, stores)
    voided: bool = False
    tag: int = 0
    created_at: int = 0
    modified_at: int = 0


@dataclass(frozen=True)
class ImportJob:
    """A bulk import of cards (POST /v1/cards/import): its validated rows are stored with it, so a run
    killed mid-way is finished by the next one (cards are idempotent per account)."""

    id: str
    program: str
    state: str  # "validating", "running", "done" or "failed"
    rows: int  # how many rows it has
    done: int  # rows processed (in row order: rows [0, done) have their card)
    created_at: float
    updated_at: float
    errors: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


# Alerts kept per card, newest last: enough for any cap a day (older records are dropped first).
ALERTS_KEPT = 200


@dataclass(frozen=True)
class DeadLetter:
    entry: OutboxEntry
    error: str
    failed_at: float
    id: str = ""  # the dead letter's own id (requeue_dead_letters names it)


# Dead letters kept: beyond it the oldest are dropped (each drop is logged with its kind and id).
DEAD_LETTERS_KEPT = 100_000


@dataclass(frozen=True)
class Erasure:
    """What erase_member did: the card as stored now, and whether this call erased it (False: it
    was erased before and nothing was written)."""

    card: Card
    erased: bool


# Report facts (GET /v1/reports/*): counters per UTC day, family and dimensions, incremented in
# the same commit as the fact they count. Families and their dimensions:
FACT_INSTALLS = "installs"  # (program, client, tier, "install" | "remove"); client "google" for Google
FACT_PUSHES = "pushes"  # (channel, outcome) of every push journal record
FACT_ALERTS = "alerts"  # (program, campaign, decision): "sent", "capped", "cooldown", "quiet"


def fact_day(at: float) -> str:
    """The UTC day (YYYY-MM-DD) a fact at unix time `at` is counted under."""
    return time.strftime("%Y-%m-%d", time.gmtime(at))


@dataclass(frozen=True)
class FactCount:
    day: str  # YYYY-MM-DD (UTC)
    dims: tuple[str, ...]
    count: int


@dataclass(frozen=True)
class AppToken:
    card_number: str
    platform: str  # "android" (FCM) or "ios" (APNs alert)
    token: str
    updated_at: float


# Google Wallet callback events kept per object for reads (google_installs); the newest win.
GOOGLE_EVENTS_KEPT = 100


# Google Wallet notify-message times kept per object (the channel needs the last 24 h: 3 a day).
GOOGLE_NOTIFIED_KEPT = 10


@dataclass(frozen=True)
class GoogleState:
    """What was last synced to a card's Google Wallet object (push/channels/google.py): the card
    `version` it showed, its `balance` and `tier` then, a hash of the last message added (None:
    none yet), and when TEXT_AND_NOTIFY messages were added in the last 24 h (oldest first,
    bounded by GOOGLE_NOTIFIED_KEPT). No personal data: the message is kept only as a hash."""

    version: int
    balance: int
    tier: str
    message_hash: str | None = None
    notified: tuple[float, ...] = ()
    # the card's tag it showed: geo content (locations, notice) changes the tag, not the version
    tag: int = 0
    notice_hash: str | None = None  # of the last geo notice added as a message (None: none yet)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "balance": self.balance,
            "tier": self.tier,
            "message_hash": self.message_hash,
            "notified": list(self.notified[-GOOGLE_NOTIFIED_KEPT:]),
            "tag": self.tag,
            "notice_hash": self.notice_hash,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GoogleState:
        return cls(
            version=int(data["version"]),
            balance=int(data["balance"]),
            tier=str(data["tier"]),
            message_hash=data.get("message_hash"),
            notified=tuple(float(t) for t in data.get("notified") or ())[-GOOGLE_NOTIFIED_KEPT:],
            tag=int(data.get("tag") or 0),
            notice_hash=data.get("notice_hash"),
        )


# The latitudes a store location may have: the band Redis GEO indexes (its geohash covers
# Web Mercator's square), applied by every adapter so they accept the same stores. Query
# centres are checked against it too; the far north and south have no shops to find.
GEO_MAX_LAT = 85.05112878


class InvalidStoreLocation(StoreError):
    """A store location (or a near-query centre) the store cannot index: a latitude beyond
    ±GEO_MAX_LAT, a longitude beyond ±180, a value that is not finite, an empty id or program,
    or one id twice in one import."""


def check_geo_point(lat: float, lon: float) -> None:
    """Raise InvalidStoreLocation unless (lat, lon) is a point every adapter can index."""
    if (
        not (isinstance(lat, int | float) and isinstance(lon, int | float))
        or isinstance(lat, bool)
        or isinstance(lon, bool)
    ):
        raise InvalidStoreLocation("latitude and longitude must be numbers")
    if not (math.isfinite(lat) and math.isfinite(lon)):
        raise InvalidStoreLocation("latitude and longitude must be finite")
    if not -GEO_MAX_LAT <= lat <= GEO_MAX_LAT:
        raise InvalidStoreLocation(f"latitude {lat!r} is outside ±{GEO_MAX_LAT}")
    if not -180.0 <= lon <= 180.0:
        raise InvalidStoreLocation(f"longitude {lon!r} is outside ±180")


def check_store_locations(locs: Iterable[StoreLocation]) -> list[StoreLocation]:
    """The locations as a list, each checked (check_geo_point, non-empty id and program) and
    no id twice; else InvalidStoreLocation naming the first bad one, before anything is written."""
    checked = list(locs)
    seen: set[str] = set()
    for loc in checked:
        if not isinstance(loc.id, str) or not loc.id:
            raise InvalidStoreLocation("a store location needs a non-empty id")
        if not isinstance(loc.program, str) or not loc.program:
            raise InvalidStoreLocation(f"store location {loc.id!r} needs a non-empty program")
        try:
            check_geo_point(loc.lat, loc.lon)
        except InvalidStoreLocation as exc:
            raise InvalidStoreLocation(f"store location {loc.id!r}: {exc}") from None
        if loc.id in seen:
            raise InvalidStoreLocation(f"store location {loc.id!r} appears twice")
        seen.add(loc.id)
    return checked


def check_near_query(lat: float, lon: float, radius_m: float) -> None:
    check_geo_point(lat, lon)
    if not (isinstance(radius_m, int | float) and math.isfinite(radius_m) and radius_m >= 0):
        raise InvalidStoreLocation("radius_m must be a finite number >= 0")


def nearest_first(found: Iterable[tuple[StoreLocation, float]], limit: int) -> list[tuple[StoreLocation, float]]:
    """The near-query order every adapter returns: distance, then id; at most `limit`."""
    return sorted(found, key=lambda pair: (pair[1], pair[0].id))[: max(limit, 0)]


class Store(abc.ABC):
    """Async storage port. Every method is atomic on its own; nothing relies on process memory."""

    # -- lifecycle -------------------------------------------------------------------------
    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and migrate the schema to the current version."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def ping(self) -> bool:
        """True when the backing store answers."""

    # -- cards -----------------------------------------------------------------------------
    @abc.abstractmethod
    async def create_card(self, card: Card, *, unique_phone: bool = False) -> tuple[Card, bool]:
        """Insert `card` unless its account already has one. Returns (stored card, created).
        The existing card is returned for the same account and program; a number or serial
        collision, or the same account in another program, raises CardConflict.
        The new card gets a fresh tag from the store counter.

        Phone index: a created card with `member.phone` is indexed under (program, phone) unless
        another card of the program holds that phone already (the first keeps it). With
        `unique_phone` (the join page: one card per phone), when a card of the program holds the
        phone, that card is returned (created False) and nothing is written, in the same atomic step."""

    @abc.abstractmethod
    async def create_cards(self, cards: Sequence[Card]) -> list[tuple[Card, bool]]:
        """create_card for each, in one atomic commit (a bulk import's batch): per card, the stored
        card and whether it was created; an account that has a card returns it (created False) and
        an account twice in the batch is created once. A number or serial collision raises
        CardConflict and writes nothing. Phone index as create_card without unique_phone."""

    @abc.abstractmethod
    async def card_by_phone(self, program: str, phone: str) -> Card | None:
        """The card the phone index holds for (program, phone), phone in E.164."""

    @abc.abstractmethod
    async def add_consents(self, card_number: str, consents: Sequence[Consent]) -> None:
        """Append the consents to the card's record (kept, in order; never replaced)."""

    @abc.abstractmethod
    async def consents(self, card_number: str) -> list[Consent]:
        """The card's consents, oldest first."""

    @abc.abstractmethod
    async def get_card(self, number: str) -> Card | None: ...

    @abc.abstractmethod
    async def get_card_by_serial(self, serial: str) -> Card | None: ...

    @abc.abstractmethod
    async def get_card_by_account(self, account: str) -> Card | None: ...

    # -- ledger ----------------------------------------------------------------------------
    @abc.abstractmethod
    async def apply_ledger_events(
        self,
        events: list[LedgerEvent],
        now: float,
        fanout: Fanout = no_fanout,
        check: EventCheck | None = None,
        *,
        derive: Derive | None = None,
        geo_generation: int | None = None,
    ) -> LedgerResult:
        """For each event in order: classify (ledger.decide.classify) against the stored card
        (by `card` number or `account`) and the set of already accepted ids; for an accepted
        one, in the same atomic commit: the new card state (ledger.decide.apply_event) with a
        new tag from the store-side counter, the event id recorded, and the entries
        `fanout(card)` names for each changed card's final state, coalesced as `enqueue` does.
        `fanout` must not depend on the card's tag (an adapter may assign tags at commit).
        An event that fails `check` against its card is INVALID (ledger.plan.plan_batch).
        `derive` maps each changed card's final state to the state stored (its geo content),
        before `fanout`. With `geo_generation`, the commit happens only while the store's geo
        generation is still that value, else GeoChanged and nothing is written."""

    # -- PassKit registrations -------------------------------------------------------------
    @abc.abstractmethod
    async def register_device(
        self,
        device_id: str,
        pass_type_id: str,
        serial: str,
        push_token: str,
        now: float,
        *,
        client: str = DEFAULT_CLIENT,
        push_service_url: str | None = None,
        max_devices: int | None = None,
        program: str = "",
        tier: str = "",
    ) -> bool:
        """Upsert; True when new. An existing registration gets the new push token, client and
        push-service URL (an app may move between relays); its `program` and `tier` stay the ones it
        was made with. A new one counts an install fact (FACT_INSTALLS: program, client, tier,
        "install") on the day of `now` in the same commit; every registration removed later (by
        unregister_device, remove_registration_if_stale or an eviction here) counts a "remove" with
        the program, client and tier it was made with, on the day it is removed. With
        `max_devices`, a new registration beyond that many for the serial evicts the least
        recently updated others (anyone holding the pass can register devices: this bounds
        the work one pass can cause)."""

    @abc.abstractmethod
    async def unregister_device(self, device_id: str, pass_type_id: str, serial: str, now: float | None = None) -> bool:
        """True when something was removed (with the device's pushed tag for the pass). The removal
        fact is counted on the day of `now` (the current time when None)."""

    @abc.abstractmethod
    async def get_registrations(self, serial: str) -> list[Registration]: ...

    @abc.abstractmethod
    async def get_registration(self, device_id: str, pass_type_id: str, serial: str) -> Registration | None: ...

    @abc.abstractmethod
    async def count_registrations(self, serial: str) -> int: ...

    @abc.abstractmethod
    async def count_registrations_by_client(self, serial: str) -> dict[str, int]:
        """Devices registered for the serial, per client; clients with none are absent."""

    @abc.abstractmethod
    async def remove_registration_if_stale(
        self, device_id: str, pass_type_id: str, serial: str, push_token: str, before: float
    ) -> bool:
        """Remove the registration only if it still has `push_token` and was last updated
        before `before` (APNs said the token was invalid at that time)."""

    @abc.abstractmethod
    async def serials_updated_since(
        self, device_id: str, pass_type_id: str, since_tag: int | None
    ) -> tuple[list[str], int]:
        """Serials registered by the device whose tag is above `since_tag` (all with None),
        and the highest tag among them (0 when the list is empty)."""

    # -- device logs (POST /passkit/v1/log) ------------------------------------------------
    @abc.abstractmethod
    async def append_device_logs(self, messages: list[str], now: float, keep: int) -> None:
        """Append, then drop the oldest beyond `keep` (by id arithmetic or a capped list: never a
        scan of the kept rows)."""

    @abc.abstractmethod
    async def list_device_logs(self, limit: int) -> list[tuple[float, str]]:
        """Newest first."""

    # -- companion-app tokens --------------------------------------------------------------
    @abc.abstractmethod
    async def add_app_token(self, card_number: str, platform: str, token: str, now: float) -> None: ...

    @abc.abstractmethod
    async def app_tokens(self, card_number: str) -> list[AppToken]: ...

    @abc.abstractmethod
    async def delete_app_token(self, token: str) -> None: ...

    # -- outbox ----------------------------------------------------------------------------
    @abc.abstractmethod
    async def enqueue(self, entries: Sequence[NewEntry], now: float) -> list[str]:
        """Add entries outside a ledger commit, due now, in one atomic step; returns their ids
        (for an entry coalesced into one already waiting, that one's id)."""

    @abc.abstractmethod
    async def claim_outbox(self, consumer: str, limit: int, lease_seconds: float, now: float) -> list[OutboxEntry]:
        """Up to `limit` entries that are due and not leased by a live consumer, leased to
        `consumer`. Entries whose lease ran out (a dead worker) are claimed again; claiming
        ends coalescing for that entry (a later change enqueues a new one)."""

    @abc.abstractmethod
    async def ack_outbox(self, entry_ids: list[str]) -> None:
        """Delivered (or nothing left to do): remove for good."""

    @abc.abstractmethod
    async def retry_outbox(self, entry: OutboxEntry, delay_seconds: float, now: float) -> None:
        """Release the lease; due again after `delay_seconds`, with attempts + 1."""

    @abc.abstractmethod
    async def dead_letter(self, entry: OutboxEntry, error: str, now: float, keep: int = DEAD_LETTERS_KEPT) -> None:
        """Remove from the outbox into the dead-letter list; beyond `keep` dead letters the oldest
        are dropped in the same step."""

    @abc.abstractmethod
    async def list_dead_letters(self, limit: int, *, before: str | None = None) -> list[DeadLetter]:
        """Newest first, each with its `id`; with `before` (an id), only older ones (paging)."""

    @abc.abstractmethod
    async def count_dead_letters(self) -> int: ...

    @abc.abstractmethod
    async def requeue_dead_letters(self, ids: Sequence[str] | None, now: float, limit: int = 1000) -> list[str]:
        """Move dead letters back into the outbox as new entries (same kind and fields, attempts 0,
        due now, no coalescing key), each removed from the dead-letter list in the same atomic step:
        the named ones (unknown ids are skipped), or with None the oldest up to `limit`. Returns the
        ids of the dead letters moved, oldest first. A dead letter is never in both places."""

    @abc.abstractmethod
    async def outbox_oldest(self) -> float | None:
        """`enqueued_at` of the oldest entry not yet acknowledged or dead-lettered (None: empty)."""

    # -- retention --------------------------------------------------------------------------
    @abc.abstractmethod
    async def forget_event_ids(self, before: float, limit: int) -> int:
        """Forget up to `limit` accepted ledger event ids accepted before `before`, oldest first;
        returns how many. (apply_ledger_events records each accepted id with its acceptance time.)
        A forgotten id is accepted again as new: callers keep ids longer than the ledger retries."""

    @abc.abstractmethod
    async def forget_google_callbacks(self, before: float, limit: int) -> int:
        """Forget up to `limit` recorded Google callbacks (nonce and event) received before `before`,
        oldest first; how many. (A nonce forgotten would be recorded again: Google retries within
        minutes, so keep them days.)"""

    @abc.abstractmethod
    async def forget_finished_jobs(self, before: float, limit: int) -> int:
        """Forget up to `limit` finished jobs created before `before`, oldest first: geo jobs that are
        done (never a program's "campaigns" job: it is restarted, not finished) and import jobs done or
        failed, each with its rows, results and errors; how many jobs."""

    # -- report facts -------------------------------------------------------------------------
    @abc.abstractmethod
    async def add_facts(self, family: str, dims: Sequence[tuple[str, ...]], now: float) -> None:
        """Count each dims tuple once (repeats count again) under `family` on the day of `now`."""

    @abc.abstractmethod
    async def fact_counts(self, family: str, from_day: str, to_day: str) -> list[FactCount]:
        """The counts of `family` for days from_day..to_day (inclusive, YYYY-MM-DD), sorted by day then
        dims; zero counts are absent."""

    @abc.abstractmethod
    async def forget_facts(self, before_day: str, limit: int) -> int:
        """Drop the counts of up to `limit` (family, day) groups with day < before_day; how many groups."""

    # -- privacy (DELETE /v1/members/{card}) -----------------------------------------------------
    @abc.abstractmethod
    async def erase_member(self, card_number: str, now: float, fanout: Fanout = no_fanout) -> Erasure | None:
        """Erase the member's personal data, keeping the card number and ledger figures. None: no such
        card. An erased card (`erased_at` set) is returned as it is (erased False), nothing written.
        Otherwise, in one atomic commit: the card's `member` becomes Member(name="") (phone and e-mail
        None), `app_token` "", `area` None, `erased_at` int(now), a new tag from the store counter,
        `modified_at` stepped (cards.model.next_modified_at) and `fanout(card)` enqueued; its consents,
        its phone-index entry, its app tokens and its alert records are deleted; the outbox entries
        waiting under the coalescing key ["enroll_webhook", card number] (push/kinds/enroll_webhook.py)
        are removed; in rows of import jobs not yet done or failed whose "account" is the card's,
        "name", "phone" and "email" are removed. Registrations stay (the void push needs them; the
        worker drops them after it)."""

    @abc.abstractmethod
    async def outbox_size(self) -> int:
        """Entries not yet acknowledged or dead-lettered."""

    @abc.abstractmethod
    async def last_pushed_tag(self, device_id: str, pass_type_id: str, serial: str) -> int:
        """The tag last pushed to this device for this pass (0 if none)."""

    @abc.abstractmethod
    async def mark_pushed(self, device_id: str, pass_type_id: str, serial: str, tag: int) -> None: ...

    # -- batched push bookkeeping (the worker's hot path: one store trip per claimed batch) ----
    @abc.abstractmethod
    async def pass_targets(self, keys: Sequence[PassKey]) -> dict[PassKey, PassTargets]:
        """For each (pass_type_id, serial): the pass's current tag and the devices registered
        for it with their push tokens and last pushed tags. One consistent read."""

    @abc.abstractmethod
    async def complete_pushes(
        self, marks: Sequence[PushMark], acks: Sequence[str], journal: list[dict[str, Any]], now: float, keep: int
    ) -> None:
        """In one atomic step: mark each tag pushed (kept at the maximum, as mark_pushed; a tag
        of 0 marks nothing), acknowledge the entries (as ack_outbox), and append `journal` in
        order (each with `at` = now unless it has one, as record_push), keeping the newest `keep`.
        Each journal record counts FACT_PUSHES (record["channel"], record["outcome"]) on the day of
        `now`, in the same step (record_push too)."""

    # -- push journal (dry run and delivery record, bounded) ---------------------------------
    @abc.abstractmethod
    async def record_push(self, record: dict[str, Any], now: float, keep: int) -> None: ...

    @abc.abstractmethod
    async def list_pushes(self, limit: int) -> list[dict[str, Any]]:
        """Newest first."""

    # -- Google Wallet callbacks (passes/google/callbacks.py verifies them first) -----------------
    @abc.abstractmethod
    async def record_google_callback(
        self, nonce: str, object_id: str, event: str, at: float, *, program: str = "", tier: str = ""
    ) -> bool:
        """Record a verified save/del callback for the object, once per `nonce`: True when new;
        a nonce seen before records nothing and returns False (Google retries and duplicates).
        A new "save" counts FACT_INSTALLS (program, "google", tier, "install") on the day of `at`,
        a new "del" (program, "google", tier, "remove"), in the same commit."""

    @abc.abstractmethod
    async def google_installs(self, object_id: str, limit: int = GOOGLE_EVENTS_KEPT) -> list[tuple[str, float]]:
        """The object's recorded (event, at), newest first, at most `limit`; the store keeps at
        least the newest GOOGLE_EVENTS_KEPT per object."""

    # -- Google Wallet sync bookkeeping (push/channels/google.py) ---------------------------------
    @abc.abstractmethod
    async def get_google_state(self, serial: str) -> GoogleState | None:
        """What was last synced to the card's Google Wallet object, None if nothing yet."""

    @abc.abstractmethod
    async def put_google_state(self, serial: str, state: GoogleState) -> bool:
        """Store `state` unless the stored one has a higher `version` (two workers never regress
        it; an equal version replaces it). True when written. `notified` is kept bounded."""

    # -- store locations (geo/) ------------------------------------------------------------------
    # Distances are geo.distance.haversine_m from the query centre to the stored coordinates,
    # computed in Python by every adapter: the same stores give the same ids, order and
    # distances (to the bit) in SQLite and Redis.
    @abc.abstractmethod
    async def put_store_location(self, loc: StoreLocation) -> bool:
        """Store `loc` under its id: True when the id is new. An existing id is replaced
        whole (it may move and change program). InvalidStoreLocation (check_store_locations)
        writes nothing."""

    @abc.abstractmethod
    async def put_store_locations(self, locs: Sequence[StoreLocation]) -> int:
        """Store every location as put_store_location does, all or nothing in one atomic step
        (an import); returns how many ids were new. Any invalid location, or an id twice,
        raises InvalidStoreLocation and writes none."""

    @abc.abstractmethod
    async def delete_store_location(self, location_id: str) -> bool:
        """True when something was removed."""

    @abc.abstractmethod
    async def get_store_location(self, location_id: str) -> StoreLocation | None: ...

    @abc.abstractmethod
    async def list_store_locations(self, program: str | None = None) -> list[StoreLocation]:
        """Every location (of `program` when given), sorted by id."""

    @abc.abstractmethod
    async def store_locations_near(
        self, lat: float, lon: float, radius_m: float, *, program: str | None = None, limit: int = 100
    ) -> list[tuple[StoreLocation, float]]:
        """The locations (of `program` when given) within `radius_m` metres of (lat, lon)
        (haversine_m <= radius_m), nearest first, ties by id, at most `limit`, each with its
        distance in metres. A centre outside the indexable band or a negative radius raises
        InvalidStoreLocation."""

    # -- geo: generation, campaigns, jobs, card updates, alerts ----------------------------------
    # The geo generation is one store-wide counter that every write of a campaign or a store
    # location advances (in the same atomic step). A writer that derived pass content from a geo
    # snapshot passes the generation it read, and the store refuses the write (GeoChanged) when it
    # moved: no card is ever stored with content derived from campaigns or stores that were
    # already replaced. Every such write also restarts its program's "campaigns" job (below), and
    # a store location moved to another program restarts both programs' jobs.
    @abc.abstractmethod
    async def geo_generation(self) -> int:
        """The current geo generation (0 before any geo write)."""

    @abc.abstractmethod
    async def put_campaign(self, campaign: Mapping[str, Any], now: float) -> bool:
        """Store the campaign (a JSON-able mapping with at least "id" and "program") under its id,
        replacing a stored one whole; True when the id is new. Advances the geo generation and
        restarts the job "campaigns:<program>" (of the old program too, if it changed)."""

    @abc.abstractmethod
    async def get_campaign(self, campaign_id: str) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    async def list_campaigns(self, program: str | None = None) -> list[dict[str, Any]]:
        """Every campaign (of `program` when given), sorted by id."""

    @abc.abstractmethod
    async def delete_campaign(self, campaign_id: str, now: float) -> bool:
        """True when it existed; then as put_campaign (generation, job restart)."""

    @abc.abstractmethod
    async def restart_campaigns_job(self, program: str, now: float) -> None:
        """Advance the geo generation and (re)start "campaigns:<program>" from the first card:
        created when missing, cursor "" and not done when it exists (its lease is kept: the
        holder's next step fails on the generation and it re-reads). Used when time, not a write,
        changed what qualifies (a campaign's start or end passed)."""

    @abc.abstractmethod
    async def add_geo_job(self, job_id: str, program: str, kind: str, payload: Mapping[str, Any], now: float) -> bool:
        """Add a job (cursor "", not done); False, changing nothing, when the id exists."""

    @abc.abstractmethod
    async def get_geo_job(self, job_id: str) -> GeoJob | None: ...

    @abc.abstractmethod
    async def claim_geo_job(self, owner: str, lease_seconds: float, now: float) -> GeoJob | None:
        """The oldest (created_at, then id) job not done whose lease is free or expired, leased to
        `owner` until now + lease_seconds; None when there is none. Claiming again as the same
        owner renews the lease."""

    @abc.abstractmethod
    async def cards_page(self, program: str, after: str, limit: int) -> list[Card]:
        """Up to `limit` cards of `program` with number > `after`, in number order."""

    @abc.abstractmethod
    async def update_cards(
        self,
        updates: Sequence[CardUpdate],
        now: float,
        fanout: Fanout = no_fanout,
        *,
        geo_generation: int | None = None,
        step: JobStep | None = None,
    ) -> UpdateResult:
        """Apply the updates (CardUpdate) in one atomic commit. With `geo_generation`: only while
        the store's generation is that value, else GeoChanged and nothing is written. With `step`:
        the job's cursor (and done) is saved in the same commit when every update was written and
        `step.owner` holds the job's lease (`advanced`); otherwise the job is left as it was (the
        updates that could be written still are)."""

    @abc.abstractmethod
    async def reserve_alert(
        self,
        card_number: str,
        record: AlertRecord,
        decide: Callable[[Sequence[AlertRecord]], str | None],
        keep_since: float,
    ) -> str | None:
        """Atomically: `decide(the card's alert records, oldest first)`; when it returns None,
        `record` is added (and records older than `keep_since`, or beyond ALERTS_KEPT, dropped)
        and None returned; otherwise its answer is returned and nothing written. Two concurrent
        calls for one card never both see the history without the other's record."""

    @abc.abstractmethod
    async def alert_records(self, card_number: str) -> list[AlertRecord]:
        """The card's alert records, oldest first."""

    @abc.abstractmethod
    async def list_geo_jobs(
        self, program: str | None = None, kind: str | None = None, limit: int = 100
    ) -> list[GeoJob]:
        """Jobs (of `program`, of `kind`), newest created first, at most `limit` (the console's history)."""

    # -- vouchers: gift certificates and offers (issue 14) --------------------------------------
    @abc.abstractmethod
    async def create_voucher(self, voucher: Voucher, now: float, fanout: Fanout = no_fanout) -> tuple[Voucher, bool]:
        """Insert unless a voucher of that kind and id exists: (stored, created). A created voucher
        gets a fresh tag from the store counter and `fanout` is enqueued in the same commit (with its
        card's devices announced through it, say). A serial collision raises StoreError.
        `fanout` is called with the voucher (as update_voucher does), not a card: it may read its
        serial and identity, never its tag."""

    @abc.abstractmethod
    async def get_voucher(self, kind: str, voucher_id: str) -> Voucher | None: ...

    @abc.abstractmethod
    async def get_voucher_by_serial(self, serial: str) -> Voucher | None: ...

    @abc.abstractmethod
    async def vouchers_of_card(self, card_number: str) -> list[Voucher]:
        """The card's vouchers, oldest first."""

    @abc.abstractmethod
    async def update_voucher(
        self, voucher: Voucher, expected_tag: int, now: float, fanout: Fanout = no_fanout
    ) -> Voucher | None:
        """Compare-and-set on the tag: replace its `data` and `voided` (identity fields kept), with a new
        tag, `modified_at` stepped (cards.model.next_modified_at) and `fanout` enqueued; None when the
        stored tag moved (or it is gone)."""

    # PassKit and the worker treat a voucher's serial as a card's: `register_device` accepts it,
    # `serials_updated_since` reports it by its tag, `pass_targets` gives its tag, and
    # `count_registrations(serial)` counts its devices.

    # -- bulk import jobs (issue 14) ----------------------------------------------------------------
    @abc.abstractmethod
    async def create_import_job(self, job: ImportJob, rows: Sequence[Mapping[str, Any]]) -> bool:
        """Store the job and its rows (JSON-able mappings, in order); False, changing nothing, when the
        id exists."""

    @abc.abstractmethod
    async def get_import_job(self, job_id: str) -> ImportJob | None: ...

    @abc.abstractmethod
    async def import_rows(self, job_id: str, start: int, limit: int) -> list[dict[str, Any]]:
        """Rows [start, start + limit) of the job."""

    @abc.abstractmethod
    async def advance_import_job(
        self,
        job_id: str,
        done: int,
        results: Sequence[tuple[str, str]],
        now: float,
        *,
        state: str | None = None,
        errors: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """Record rows up to `done` as processed with their (account, card number) results appended in
        row order (a result already recorded for an account is not recorded twice), the state when
        given, errors appended, `updated_at` = now; all in one commit. A state of "done" or "failed"
        also deletes the job's rows (they hold personal data; results and errors stay)."""

    @abc.abstractmethod
    async def import_results(self, job_id: str, start: int, limit: int) -> list[tuple[str, str]]:
        """(account, card number) results [start, start + limit), in row order."""
