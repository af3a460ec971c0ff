"""Bodies the OpenAPI document describes without reading them: request bodies whose readers are
hand-written elsewhere (ledger/events.py, web/passkit.py) and the answers handlers build.

They take their limits from those modules' constants where the constants are public, and
tests/web/test_openapi.py holds them to what the service really accepts and answers."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cards.bounds import POINTS_MAX, VERSION_MAX
from geo.alerts import PING_RESULTS
from ledger.decide import Outcome
from ledger.events import MAX_EVENTS, MESSAGE_MAX
from push.clients import APNS_TOKEN_PATTERN, CLIENTS, RELAY_TOKEN_PATTERN
from web.passkit import LOG_BATCH_MAX, LOG_MESSAGE_MAX
from web.validation import ACCOUNT_RE, Choices, plain_text_pattern

JsonSchema = dict[str, Any]


@dataclass(frozen=True)
class Schema:
    """A body described only: its reader is hand-written elsewhere, or it is an answer."""

    name: str
    build: Callable[[Choices], JsonSchema]

    def schema(self, choices: Choices) -> JsonSchema:
        return self.build(choices)


def _fixed(name: str, schema: JsonSchema) -> Schema:
    return Schema(name, lambda _choices: schema)


def _object(properties: Mapping[str, JsonSchema], required: Sequence[str] | None = None, **extra: Any) -> JsonSchema:
    # answers list every property they always carry; None means "all of them"
    names = list(properties) if required is None else list(required)
    return {"type": "object", "properties": dict(properties), "required": names, **extra}


def _array(items: JsonSchema, **extra: Any) -> JsonSchema:
    return {"type": "array", "items": items, **extra}


_STRING: JsonSchema = {"type": "string"}
_INTEGER: JsonSchema = {"type": "integer"}
_URI: JsonSchema = {"type": "string", "format": "uri"}
_NULLABLE_STRING: JsonSchema = {"type": ["string", "null"]}
_TIMESTAMP: JsonSchema = {"type": "string", "format": "date-time"}


# -- cards ------------------------------------------------------------------------------------

_LINKS = _object(
    {
        "apple": _URI | {"description": "signed, expiring .pkpass download"},
        "page": _URI | {"description": "signed, expiring card page"},
        "google": _URI
        | {
            "pattern": "^https://pay\\.google\\.com/gp/v/save/[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$",
            "description": "Save to Google Wallet (`https://pay.google.com/gp/v/save/<jwt>`, the skinny JWT "
            "naming the card's object and class); the same link on every answer for the card while its tier "
            "stays. Only while Google Wallet is on (WALLET_GOOGLE_ISSUER_ID set)",
        },
    },
    required=["apple", "page"],
)

CARD_ISSUED = _fixed(
    "CardIssued",
    _object(
        {
            "card": _STRING,
            "serial": _STRING,
            "links": _LINKS,
            "app_token": _NULLABLE_STRING
            | {
                "description": "the companion app's secret for this card (`Authorization: Card <card>:<app_token>`); "
                "only in this answer, never in GET /v1/cards/{card}. null: a card issued before app tokens "
                "existed, which has no app access"
            },
        }
    ),
)

CARD_STATE = _fixed(
    "CardState",
    _object(
        {
            "card": _STRING,
            "program": _STRING,
            "account": _STRING,
            "serial": _STRING,
            "member": _object({"name": _STRING, "phone": _NULLABLE_STRING, "email": _NULLABLE_STRING}),
            "locale": _STRING,
            "balance": _INTEGER,
            "tier": _STRING,
            "pending": _INTEGER,
            "expiring": {
                "anyOf": [_object({"points": _INTEGER, "date": {"type": "string", "format": "date"}}), {"type": "null"}]
            },
            "last_message": _NULLABLE_STRING,
            "version": _INTEGER,
            "devices": _INTEGER | {"description": "registered devices"},
            "devices_by_client": {
                "type": "object",
                "description": "registered devices per app: " + ", ".join(f"`{c}`" for c in CLIENTS),
                "propertyNames": {"enum": list(CLIENTS)},
                "additionalProperties": _INTEGER,
            },
            "devices_current": _INTEGER
            | {"description": "registered devices pushed the card's latest change (all of them once it is delivered)"},
            "created_at": _TIMESTAMP,
            "updated_at": _TIMESTAMP,
            "links": _LINKS,
        }
    ),
)

_TIER_SUMMARY = _object(
    {
        "key": _STRING,
        "name": _STRING,
        "names": {"type": "object", "additionalProperties": _STRING},
        "accrual_percent": {"type": "number"},
        "threshold": _INTEGER,
        "next_threshold": {"type": ["integer", "null"]},
        "colors": _object({"background": _STRING, "foreground": _STRING, "label": _STRING}),
    }
)

PROGRAMS = _fixed(
    "Programs",
    _object(
        {
            "programs": _array(
                _object(
                    {
                        "program": _STRING,
                        "name": _STRING,
                        "names": {"type": "object", "additionalProperties": _STRING},
                        "organization": _STRING,
                        "locale": _STRING,
                        "locales": _array(_STRING),
                        "default_locale": _STRING,
                        "tiers": _array(_TIER_SUMMARY),
                    },
                    required=["program", "name", "locale", "locales", "default_locale", "tiers"],
                )
            )
        }
    ),
)


# -- ledger -----------------------------------------------------------------------------------
# ledger/events.py reads these by hand; its patterns are private there, so they are restated here
# and tests/web/test_openapi.py holds the two to the same verdicts.


def _ledger_event(choices: Choices) -> JsonSchema:
    def count(minimum: int = 0, maximum: int = POINTS_MAX, nullable: bool = False) -> JsonSchema:
        return {"type": ["integer", "null"] if nullable else "integer", "minimum": minimum, "maximum": maximum}

    def text(max_len: int, pattern: str = "\\S", **extra: Any) -> JsonSchema:
        # ledger/events.py takes null for absent and refuses blank strings
        return {"type": ["string", "null"], "maxLength": max_len, "pattern": pattern, **extra}

    tier = text(32)
    if choices["tiers"]:
        tier["enum"] = [*choices["tiers"], None]
    return {
        "title": "LedgerEvent",
        "type": "object",
        "required": ["id", "version", "balance"],
        "anyOf": [
            {"required": ["card"], "properties": {"card": {"type": "string"}}},
            {"required": ["account"], "properties": {"account": {"type": "string"}}},
        ],
        "properties": {
            "id": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,128}$", "description": "unique per event"},
            "card": {"type": ["string", "null"], "pattern": "^[0-9]{16}$"},
            "account": {"type": ["string", "null"], "pattern": ACCOUNT_RE.pattern},
            "version": count(1, VERSION_MAX)
            | {"description": "increasing per card; one not above the stored version is stale"},
            "balance": count(),
            "tier": tier | {"description": "a tier of the card's program"},
            "pending": count(nullable=True),
            "expiring": {
                "type": ["object", "null"],
                "required": ["points", "date"],
                "properties": {
                    "points": count(),
                    "date": {"type": "string", "format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
                },
            },
            "message": text(
                MESSAGE_MAX,
                plain_text_pattern(multiline=True),
                description="shown as the pass's change notification; may hold line breaks (\\n), no other "
                "control characters, no bidirectional formatting characters",
            ),
            "occurred_at": text(40, format="date-time"),
        },
    }


LEDGER_POST = Schema(
    "LedgerPost",
    lambda choices: _object(
        {
            "events": _array(
                _ledger_event(choices),
                maxItems=MAX_EVENTS,
                description=f"at most {MAX_EVENTS} (more: 413); an event that does not match comes back in `invalid`",
            )
        }
    ),
)

LEDGER_RESULT = _fixed(
    "LedgerResult",
    _object(
        {
            **{outcome.value: _array(_STRING) for outcome in Outcome},
            "invalid": _array(_object({"id": _NULLABLE_STRING, "error": _STRING})),
        }
    ),
)


# -- PassKit (Apple's web service protocol) ---------------------------------------------------

_PUSH_TOKEN = {
    "type": "string",
    "pattern": RELAY_TOKEN_PATTERN,
    "description": f"Apple Wallet (`ApplePass`): the APNs device token, hex (`{APNS_TOKEN_PATTERN}`); "
    "the Android pass apps: their FCM/HMS push token",
}
REGISTRATION = _fixed("Registration", _object({"pushToken": _PUSH_TOKEN}))
ATTIDO_REGISTRATION = _fixed(
    "AttidoRegistration",
    _object(
        {
            "pushToken": _PUSH_TOKEN,
            "pushServiceUrl": {
                "type": "string",
                "format": "uri",
                "maxLength": 2048,
                "description": "where PassWallet's pushes go: https, host in WALLET_RELAY_PASSWALLET_HOSTS",
            },
        }
    ),
)

SERIALS = _fixed(
    "SerialNumbers",
    _object(
        {
            "serialNumbers": _array(_STRING),
            "lastUpdated": _STRING | {"description": "opaque tag for the next passesUpdatedSince"},
        }
    ),
)

DEVICE_LOG = _fixed(
    "DeviceLog",
    _object(
        {
            "logs": _array(
                _STRING,
                maxItems=LOG_BATCH_MAX,
                description=f"each kept to its first {LOG_MESSAGE_MAX} characters",
            )
        }
    ),
)


# -- stores (web/stores.py) ------------------------------------------------------------------

_STORE_PROPERTIES: dict[str, JsonSchema] = {
    "id": _STRING,
    "program": _STRING,
    "name": _STRING,
    "lat": {"type": "number"},
    "lon": {"type": "number"},
    "address": _STRING,
    "timezone": _STRING | {"description": "IANA time zone"},
}

STORE_LOCATION = _fixed("StoreLocation", _object(_STORE_PROPERTIES))

STORES = _fixed(
    "Stores",
    _object(
        {
            "stores": _array(
                _object(
                    {**_STORE_PROPERTIES, "distance_m": {"type": "number", "description": "only with `near`"}},
                    required=list(_STORE_PROPERTIES),
                ),
                description="by id; nearest first with `near`",
            )
        }
    ),
)

STORE_DELETED = _fixed("StoreDeleted", _object({"deleted": _STRING}))

STORE_IMPORT = _fixed(
    "StoreImport",
    {
        "type": "object",
        "description": "A GeoJSON FeatureCollection of Point features (`coordinates` [lon, lat]; properties "
        "`id`, `program`, `name`, `address`, `timezone`) as application/json or application/geo+json; or, as "
        "text/csv, UTF-8 with a header row (`;` or `,`) of the columns id, program, name, lat, lon, address, "
        "timezone.",
        "required": ["type", "features"],
        "properties": {
            "type": {"const": "FeatureCollection"},
            "features": _array(
                _object(
                    {
                        "type": {"const": "Feature"},
                        "geometry": _object(
                            {
                                "type": {"const": "Point"},
                                "coordinates": _array({"type": "number"}, minItems=2, maxItems=3),
                            }
                        ),
                        "properties": {"type": "object"},
                    }
                ),
                minItems=1,
            ),
        },
    },
)

STORES_IMPORTED = _fixed("StoresImported", _object({"imported": _INTEGER}))

# -- bulk import of cards (web/imports.py) ----------------------------------------------------

_ROW_ERROR = _object(
    {
        "line": _INTEGER | {"description": "the file's line (1: the header; 0: the whole file)"},
        "column": _NULLABLE_STRING | {"description": "the column, null for the whole row or file"},
        "reason": _STRING,
    }
)

IMPORT_ACCEPTED = _fixed(
    "ImportAccepted",
    _object({"job": _STRING | {"description": "GET /v1/jobs/{id}; the same file posted again names the same job"}}),
)

IMPORT_REFUSED = _fixed(
    "ImportRefused",
    _object(
        {
            "error": _object({"code": {"const": "invalid_rows"}, "message": _STRING}),
            "errors": _array(_ROW_ERROR, description="every bad cell (at most 10 000), in file order"),
        }
    ),
)

IMPORT_JOB = _fixed(
    "ImportJob",
    _object(
        {
            "id": _STRING,
            "program": _STRING,
            "state": {"enum": ["validating", "running", "done", "failed"]},
            "rows": _INTEGER,
            "done": _INTEGER | {"description": "rows whose card exists, in file order"},
            "errors": _array(
                _ROW_ERROR, description="why a job failed (e.g. an account with a card in another program)"
            ),
            "rate": {"type": ["number", "null"], "description": "rows per second"},
            "eta_s": {"type": ["number", "null"], "description": "seconds left at that rate"},
            "welcome_bonus": _INTEGER | {"description": "points to credit each row (by the ledger: not applied here)"},
        }
    ),
)


# -- campaigns and messages (web/campaigns.py, web/messages.py) ------------------------------

_NULLABLE_INTEGER: JsonSchema = {"type": ["integer", "null"]}
_NULLABLE_TIMESTAMP: JsonSchema = {"type": ["string", "null"], "format": "date-time"}
_NULLABLE_IDS: JsonSchema = {"type": ["array", "null"], "items": _STRING}
_CONDITIONS = _object(
    {"min_balance": _NULLABLE_INTEGER, "tiers": _NULLABLE_IDS, "expiring_within_days": _NULLABLE_INTEGER},
    description="null: no condition",
)
# `paused` came later: campaigns stored before it lack it (and are not paused)
_CAMPAIGN_ALWAYS = (
    "id",
    "program",
    "name",
    "text",
    "stores",
    "when",
    "starts_at",
    "ends_at",
    "max_per_day",
    "radius_m",
    "announce",
)
_CAMPAIGN = _object(
    {
        "id": _STRING | {"description": "generated at creation, random"},
        "program": _STRING,
        "name": _STRING,
        "text": _STRING,
        "stores": _NULLABLE_IDS | {"description": "null: all of the program's stores"},
        "when": _CONDITIONS,
        "starts_at": _NULLABLE_TIMESTAMP | {"description": "UTC; null: open"},
        "ends_at": _NULLABLE_TIMESTAMP | {"description": "UTC; null: open"},
        "max_per_day": _INTEGER,
        "radius_m": _INTEGER,
        "announce": _NULLABLE_STRING,
        "paused": {"type": "boolean", "description": "not active while true (absent on campaigns stored before it)"},
    },
    required=[*_CAMPAIGN_ALWAYS],
)

CAMPAIGN = _fixed("Campaign", _CAMPAIGN)

CAMPAIGNS = _fixed("Campaigns", _object({"campaigns": _array(_CAMPAIGN, description="by id")}))

CAMPAIGN_DELETED = _fixed("CampaignDeleted", _object({"deleted": _STRING}))

CAMPAIGN_PREVIEW = _fixed(
    "CampaignPreview",
    _object(
        {
            "qualifying": _INTEGER | {"description": "cards meeting `when` now (the schedule aside)"},
            "by_tier": {"type": "object", "additionalProperties": _INTEGER, "description": "the same, per tier key"},
            "samples": _array(
                _object({"card": {"type": "string", "pattern": "^[0-9]{4}$"}, "text": _STRING}),
                maxItems=5,
                description="the text as qualifying cards show it; `card`: the last 4 digits",
            ),
            "active": {"type": "boolean", "description": "the campaign runs now (between starts_at and ends_at)"},
        }
    ),
)

_MESSAGE_JOB = {"type": "string", "pattern": "^message:[A-Za-z0-9_-]+$"}
_MESSAGE_STATE = {"enum": ["queued", "running", "done"]}

MESSAGE_QUEUED = _fixed("MessageQueued", _object({"id": _STRING, "job": _MESSAGE_JOB, "state": _MESSAGE_STATE}))

MESSAGE_STATE = _fixed(
    "MessageState",
    _object(
        {
            "id": _STRING,
            "job": _MESSAGE_JOB,
            "program": _STRING,
            "text": _STRING,
            "when": _CONDITIONS,
            "stores": _NULLABLE_IDS,
            "created_at": _TIMESTAMP,
            "state": _MESSAGE_STATE,
            "cursor": {
                "type": ["string", "null"],
                "description": "the last 4 digits of the last card done (cards go in number order); null: none yet",
            },
        }
    ),
)


# -- admin and operations ---------------------------------------------------------------------

DEVICE_LOGS = _fixed("DeviceLogs", _object({"logs": _array(_object({"at": {"type": "number"}, "message": _STRING}))}))

PUSHES = _fixed("Pushes", _object({"pushes": _array({"type": "object", "description": "a push journal record"})}))

DEAD_LETTERS = _fixed(
    "DeadLetters",
    _object(
        {
            "total": _INTEGER | {"description": "dead letters kept (at most WALLET_DEAD_LETTERS_KEPT)"},
            "dead_letters": _array(
                _object(
                    {
                        "id": _STRING | {"description": "the dead letter's id: `before` and requeue take it"},
                        "entry": _STRING | {"description": "the outbox entry it was"},
                        "kind": _STRING,
                        "attempts": _INTEGER,
                        "error": _NULLABLE_STRING,
                        "failed_at": {"type": "number"},
                        "fields": {"type": "object", "description": "push tokens cut to a short hint"},
                    }
                )
            ),
        }
    ),
)

DEAD_LETTERS_REQUEUED = _fixed(
    "DeadLettersRequeued",
    _object({"requeued": _array(_STRING, description="the ids of the dead letters put back, oldest first")}),
)

HEALTH = _fixed("Health", _object({"status": {"const": "ok"}}))

READINESS = _fixed(
    "Readiness",
    _object(
        {
            "status": {"enum": ["ready", "not ready"]},
            "store": {"enum": ["ok", "unreachable"]},
            "certificates": _object(
                {
                    "problems": _array(_STRING),
                    "days_to_expiry": {"type": "object", "additionalProperties": {"type": "number"}},
                }
            ),
            "relays": _object(
                {
                    "missing_keys": _array(
                        _STRING,
                        description="variables of relays that need an API key and have none (empty in dry run); "
                        "their pushes are dead-lettered, the service stays ready",
                    ),
                }
            ),
            "google": {
                "enum": ["on", "off"],
                "description": "Google Wallet: off when no issuer id is configured (no links.google); "
                "the service stays ready",
            },
        }
    ),
)


# -- companion app ----------------------------------------------------------------------------

APP_DEVICE_REGISTERED = _fixed(
    "AppDeviceRegistered",
    _object({"platform": {"enum": ["android", "ios"]}, "registered": {"const": True}}),
)

GEO_PING_RESULT = _fixed(
    "GeoPingResult",
    _object(
        {
            "result": {
                "enum": list(PING_RESULTS),
                "description": "`sent`: an alert went to every app install of the card; `quiet_hours`: it is "
                "22:00-08:00 at the store; `capped`: the campaign's `max_per_day` alerts were sent today (the "
                "store's day); `cooldown`: this store alerted the card within 24 h; `none_near`: no store of a "
                "campaign the card qualifies for is within the campaign's `radius_m`",
            },
            "store": _NULLABLE_STRING | {"description": "the nearest such store's id; null with `none_near`"},
        }
    ),
)


# -- gift certificates and offers (web/vouchers.py) ---------------------------------------------

_VOUCHER_LINKS = _object(
    {
        "apple": _URI | {"description": "signed, expiring .pkpass download of the voucher"},
        "google": _URI | {"description": "Save to Google Wallet (skinny JWT); only while Google Wallet is on"},
    },
    required=["apple"],
)

VOUCHER_ISSUED = _fixed(
    "VoucherIssued",
    _object({"id": _STRING, "serial": _STRING, "links": _VOUCHER_LINKS}),
)

OFFER_QUEUED = _fixed(
    "OfferQueued",
    _object({"id": _STRING, "job": {"type": "string", "pattern": "^offer:.+$"}}),
)

VOUCHER_REDEEMED = _fixed(
    "VoucherRedeemed",
    _object({"id": _STRING, "serial": _STRING, "redeemed": {"const": True}}),
)

VOUCHER_STATE = _fixed(
    "Certificate",
    _object(
        {
            "id": _STRING,
            "kind": {"const": "certificate"},
            "serial": _STRING,
            "program": _STRING,
            "card": _NULLABLE_STRING,
            "voided": {"type": "boolean"},
            "expires": _NULLABLE_STRING,
            "amount": {"type": "number"},
            "currency": _STRING,
            "terms": _NULLABLE_STRING,
            "links": _VOUCHER_LINKS,
            "code": _STRING | {"description": "only to the admin key"},
            "pin": _NULLABLE_STRING | {"description": "only to the admin key"},
        },
        required=["id", "kind", "serial", "program", "card", "voided", "expires", "amount", "currency", "links"],
    ),
)


# -- members and privacy ------------------------------------------------------------------------

MEMBER_EXPORT = _fixed(
    "MemberExport",
    _object(
        {
            "exported_at": {"type": "number"},
            "card": {
                "type": "object",
                "description": "the card record (no auth token; app_token says only whether one exists)",
            },
            "consents": _array({"type": "object"}),
            "devices": _array(
                _object({"device": _STRING, "client": _STRING, "push_token": _STRING, "updated_at": {"type": "number"}})
            ),
            "app_tokens": _array(_object({"platform": _STRING, "token": _STRING, "updated_at": {"type": "number"}})),
            "alerts": _array(_object({"at": {"type": "number"}, "campaign": _STRING, "store": _STRING})),
            "vouchers": _array({"type": "object"}),
            "pushes": _array({"type": "object", "description": "push journal records of the member's passes"}),
            "google_wallet": _object(
                {"object_id": _STRING, "events": _array({"type": "object"}), "synced": {"type": ["object", "null"]}}
            ),
        },
        required=["exported_at", "card", "consents", "devices", "app_tokens", "alerts", "vouchers", "pushes"],
    ),
)

MEMBER_ERASED = _fixed(
    "MemberErased",
    _object(
        {
            "card": _STRING,
            "erased": {"type": "boolean", "description": "false when an earlier request erased it"},
            "erased_at": _INTEGER,
            "vouchers_voided": _INTEGER,
            "devices": _INTEGER | {"description": "devices still to be told of the void (then forgotten)"},
        }
    ),
)


# -- reports (web/reports.py; columns from service/reports.py) ------------------------------------

_DAY: JsonSchema = {"type": "string", "format": "date", "description": "a UTC day"}
_COUNT: JsonSchema = {"type": "integer", "minimum": 0}


def _report(name: str, row: JsonSchema, **fields: JsonSchema) -> Schema:
    properties = {
        "report": {"const": name},
        "from": _DAY | {"description": "the first day counted"},
        "to": _DAY | {"description": "the last day counted"},
        **fields,
        "rows": _array(row),
    }
    return _fixed("Report" + name.capitalize(), _object(properties))


REPORT_INSTALLS = _report(
    "installs",
    _object(
        {
            "day": _DAY,
            "program": _STRING,
            "platform": _STRING | {"description": "Apple Wallet, an Android app's name, or Google Wallet"},
            "client": _STRING | {"description": "the app's key (push/clients.py; `google` for Google Wallet)"},
            "tier": _STRING | {"description": "the card's tier key when the pass was added (a voucher: its kind)"},
            "installs": _COUNT | {"description": "new registrations (Google: save callbacks)"},
            "removals": _COUNT | {"description": "registrations removed (Google: del callbacks)"},
        }
    ),
    program=_NULLABLE_STRING | {"description": "the program asked for; null: all"},
)

REPORT_PUSHES = _report(
    "pushes",
    _object({"day": _DAY, "channel": _STRING, "result": _STRING, "count": _COUNT}),
)

REPORT_CAMPAIGNS = _report(
    "campaigns",
    _object(
        {
            "campaign": _STRING,
            "name": _STRING,
            "program": _STRING,
            "active": {"type": "boolean", "description": "the campaign runs now"},
            "deleted": {"type": "boolean", "description": "deleted since; listed for its alerts in the period"},
            "qualifying": _COUNT | {"description": "cards meeting its conditions now (the schedule aside)"},
            "carrying": _COUNT | {"description": "passes whose stored content shows it now (locations or announce)"},
            "alerts_sent": _COUNT,
            "alerts_capped": _COUNT | {"description": "refused: max_per_day reached"},
            "alerts_cooldown": _COUNT | {"description": "refused: the same store within 24 h"},
            "alerts_quiet_hours": _COUNT | {"description": "refused: 22:00-08:00 at the store"},
        }
    ),
    program=_STRING,
    cards={"type": "integer", "minimum": 0, "description": "the program's cards counted (erased ones left out)"},
    complete={"type": "boolean", "description": "false: the card limit stopped the count (the first cards by number)"},
)
