"""The route table: every HTTP route of the service, in one place, each with what /openapi.json says of it
(web/routing.py). The document is written from this table; nothing else lists the routes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from xstatic.pkg import leaflet

from cards.bounds import POINTS_MAX
from service import imports as service_imports
from service import reports as service_reports
from web import (
    admin,
    apps,
    assets,
    campaigns,
    cards,
    imports,
    ledger,
    members,
    messages,
    ops,
    passkit,
    reports,
    schemas,
    stores,
    vouchers,
)
from web.console.routes import CONSOLE_ROUTES
from web.google import (
    CALLBACK,
    CALLBACK_RESULT,
    GOOGLE_WALLET_OFF,
    INVALID_CALLBACK,
    KEYS_UNAVAILABLE,
    UNVERIFIED_CALLBACK,
    google_callback,
)
from web.models import NEW_CARD
from web.pages import activate as activate_page
from web.pages import card as card_page
from web.pages import join as join_page
from web.pages.templating import STATIC_DIR
from web.preview import program_preview
from web.routing import APPLE_PASS, LEDGER_SIGNATURE, ApiRoute, Operation, Param, Reply, bearer

# Apple's names for the PassKit path parameters, as in its web service reference
REGISTRATIONS = "/passkit/v1/devices/{deviceLibraryIdentifier}/registrations/{passTypeIdentifier}"
REGISTRATION = REGISTRATIONS + "/{serialNumber}"
# PassWallet's own registration path (facts: android-wallet-apps.md §4)
ATTIDO_REGISTRATION = (
    "/passkit/v1/devices/{deviceLibraryIdentifier}/registrations_attido/{passTypeIdentifier}/{serialNumber}"
)

_DEVICE = Param(
    "deviceLibraryIdentifier", {"pattern": passkit.DEVICE_RE.pattern}, "path", description="chosen by the device"
)
_PASS_TYPE = Param(
    "passTypeIdentifier",
    {"pattern": passkit.PASS_TYPE_RE.pattern},
    "path",
    description="the Pass Type ID (WALLET_PASS_TYPE_ID)",
)
_SERIAL_NUMBER = Param("serialNumber", {"pattern": passkit.SERIAL_RE.pattern}, "path")
_INVALID_PATH = {400: ("invalid_path",)}
# the JSON 429 of the rate-limited public routes (web/ratelimit.py), with Retry-After
_RATE_LIMITED = {429: ("rate_limited",)}
_PASSKIT_ERRORS = {**_INVALID_PATH, **_RATE_LIMITED}

_SIGNED_LINK = (
    Param("exp", {"type": "string", "pattern": "^[0-9]+$"}, required=True, description="expiry, unix seconds"),
    Param("sig", {"type": "string", "minLength": 32, "maxLength": 32}, required=True),
)
_LINK_ERRORS = {404: ("invalid_link",)}
_PROGRAM = Param("program", {"pattern": "^[a-z][a-z0-9_-]*$"}, "path", description="the program's key")
_PAGE_LANG = Param("lang", {"enum": ["ru", "en"]}, description="the page's language, over Accept-Language")
_PAGE_RATE_LIMITED = Reply(
    "a page saying to wait: over WALLET_RATE_PAGES for this address",
    media_type="text/html",
    headers={"Retry-After": "seconds"},
)
_PASS_HEADERS = {"Last-Modified": "when the pass last changed", "ETag": "the pass's digest"}

_LIMIT = (
    Param(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": 10_000, "default": 100},
        description="how many, newest first",
    ),
)
_ADMIN = bearer("admin")
_ADMIN_ERRORS = {400: ("invalid_query",)}
_MEMBER_CARD = Param("card", {"pattern": "^[0-9]{16}$"}, "path", description="the 16-digit card number")
_MARKETING = bearer("marketing")
_STORE_ID = Param("id", {"pattern": stores.ID_RE.pattern}, "path", description="the store's id, chosen by the caller")
_CAMPAIGN_ID = Param("id", {"pattern": campaigns.ID_RE.pattern}, "path", description="the campaign's id")
_CAMPAIGN_ERRORS = {400: ("invalid_path",), 404: ("unknown_campaign",)}
_REPORT_PARAMS = (
    Param("from", {"type": "string", "format": "date"}, description="the first UTC day (YYYY-MM-DD)"),
    Param("to", {"type": "string", "format": "date"}, description="the last UTC day (YYYY-MM-DD); today by default"),
    Param("format", {"enum": ["json", "csv"], "default": "json"}, description="csv: the same rows as CSV"),
)
_REPORT_DESCRIPTION = (
    f" Without `from`, the {service_reports.DEFAULT_DAYS} days up to `to`; `to` not before `from`, at most "
    f"{service_reports.MAX_DAYS} days. "
    "`?format=csv`: a header row, then the rows' fields in the JSON order (true/false for booleans)."
)


def _report_route(
    path: str, endpoint: Callable[..., Any], summary: str, reply: Reply, description: str, program: Param | None = None
) -> ApiRoute:
    """GET /v1/reports/*: marketing (and admin), JSON or CSV, over a period of UTC days."""
    return ApiRoute(
        path,
        endpoint,
        method="GET",
        operation=Operation(
            summary,
            {200: reply},
            description=description + _REPORT_DESCRIPTION,
            security=_MARKETING,
            params=((program,) if program is not None else ()) + _REPORT_PARAMS,
            errors={400: ("invalid_query", "unknown_program") if program is not None else ("invalid_query",)},
        ),
    )


_VOUCHER_ID = Param("id", {"pattern": vouchers.ID_RE.pattern}, "path", description="the ledger's id")

API_ROUTES: list[ApiRoute] = [
    ApiRoute(
        "/v1/cards",
        cards.create_card,
        method="POST",
        operation=Operation(
            "Issue a card (idempotent per account)",
            {201: Reply("issued", schemas.CARD_ISSUED), 200: Reply("the account's existing card", schemas.CARD_ISSUED)},
            body=NEW_CARD,
            body_errors=("invalid_field",),
            security=bearer("issuer"),
            errors={404: ("unknown_program",), 409: ("account_in_other_program",), 503: ("unavailable",)},
        ),
    ),
    ApiRoute(
        "/v1/cards/{card_number}",
        cards.get_card,
        method="GET",
        operation=Operation(
            "Current card state: balance, tier, version, registered devices, timestamps",
            {200: Reply("the card", schemas.CARD_STATE)},
            security=bearer("issuer"),
            params=(Param("card_number", {"pattern": "^[0-9]{16}$"}, "path", description="the 16-digit card number"),),
            errors={404: ("unknown_card",)},
        ),
    ),
    ApiRoute(
        "/v1/passes/{serial}.pkpass",
        cards.download_pkpass,
        method="GET",
        operation=Operation(
            "The signed .pkpass (a signed, expiring link; no key needed)",
            {
                200: Reply(
                    "the pass",
                    media_type=cards.PKPASS_TYPE,
                    headers={**_PASS_HEADERS, "Content-Disposition": "attachment with the program's name"},
                )
            },
            params=_SIGNED_LINK,
            errors={**_LINK_ERRORS, **_RATE_LIMITED},
        ),
    ),
    ApiRoute(
        "/c/{serial}",
        card_page.card_page,
        method="GET",
        operation=Operation(
            "The member's card page (a signed, expiring link)",
            {
                200: Reply("the page", media_type="text/html", headers={"Vary": "User-Agent, Accept-Language"}),
                404: Reply(
                    "a page saying the link is invalid or has expired (an unknown serial looks the same)",
                    media_type="text/html",
                ),
                429: _PAGE_RATE_LIMITED,
            },
            description="Balance, tier in its colours, points to the next tier, expiring points, last operation and "
            "the card's notice; the wallet buttons that fit the browser (iOS: Apple Wallet; Android: Google Wallet "
            "while it is on, the .pkpass and the Android pass apps; elsewhere all of them and a QR code of this page). "
            "Russian or English by the card's locale and Accept-Language (`lang` picks one).",
            params=(*_SIGNED_LINK, _PAGE_LANG),
        ),
    ),
    ApiRoute(
        "/join/{program}",
        join_page.join_form,
        method="GET",
        operation=Operation(
            "The join form of a program (sets the CSRF cookie)",
            {
                200: Reply(
                    "the form", media_type="text/html", headers={"Set-Cookie": "wallet_csrf, when the browser has none"}
                ),
                404: Reply("a page saying there is no such program", media_type="text/html"),
                429: _PAGE_RATE_LIMITED,
            },
            description="Name, phone, optional e-mail, consent to the program's terms (text and version from its "
            "template) and marketing consent per channel (SMS, e-mail, push). Works without JavaScript. "
            "Rate-limited per client address (WALLET_RATE_PAGES).",
            params=(_PROGRAM, _PAGE_LANG),
        ),
    ),
    ApiRoute(
        "/join/{program}",
        join_page.join_submit,
        method="POST",
        operation=Operation(
            "Join: issue the member's card (the same phone again: the same card) and go to the card page",
            {
                303: Reply(
                    "to the card page (its signed link)", media_type=None, headers={"Location": "the card page"}
                ),
                400: Reply("the form again, the values kept, each problem next to its field", media_type="text/html"),
                403: Reply(
                    "a page saying the form expired: no valid CSRF token (nothing is stored)", media_type="text/html"
                ),
                404: Reply("a page saying there is no such program", media_type="text/html"),
                429: _PAGE_RATE_LIMITED,
                503: Reply("the form again: no card number could be allocated", media_type="text/html"),
            },
            description="Body `application/x-www-form-urlencoded` (the form of GET): `csrf`, `lang`, `name`, `phone` "
            "(read in the program's `region`, stored as E.164), `email` (optional), `terms=yes` (required), "
            "`marketing_sms`, `marketing_email`, `marketing_push` (`yes` when ticked). The consents are recorded "
            "with their time, the terms' version and channel; a new member is announced to "
            "WALLET_ENROLL_WEBHOOK_URL through the outbox (signed with X-Wallet-Signature).",
            params=(_PROGRAM,),
        ),
    ),
    ApiRoute(
        "/activate/{program}",
        activate_page.activate_form,
        method="GET",
        operation=Operation(
            "The activation form of a program's pre-printed cards (sets the CSRF cookie)",
            {
                200: Reply("the form", media_type="text/html"),
                404: Reply("a page saying there is no such program", media_type="text/html"),
                429: _PAGE_RATE_LIMITED,
            },
            params=(_PROGRAM, _PAGE_LANG),
        ),
    ),
    ApiRoute(
        "/activate/{program}",
        activate_page.activate_submit,
        method="POST",
        operation=Operation(
            "Activate a pre-printed card: the card is created with its printed number, once",
            {
                303: Reply(
                    "to the card page (its signed link)", media_type=None, headers={"Location": "the card page"}
                ),
                400: Reply(
                    "the form again: a mistyped number (Luhn), one outside the program's `plastic_ranges`, "
                    "or the join form's problems",
                    media_type="text/html",
                ),
                403: Reply(
                    "a page saying the form expired: no valid CSRF token (nothing is stored)", media_type="text/html"
                ),
                404: Reply("a page saying there is no such program", media_type="text/html"),
                409: Reply("the form again: that card is already active", media_type="text/html"),
                429: _PAGE_RATE_LIMITED,
                503: Reply("the form again: the card could not be created", media_type="text/html"),
            },
            description="Form fields as on /join plus `number` (16 digits, spaces allowed; `name` optional). "
            "Rate-limited per address (WALLET_RATE_PAGES) and per card number.",
            params=(_PROGRAM,),
        ),
    ),
    ApiRoute(
        "/pages/{program}/tiers.css",
        card_page.tiers_css,
        method="GET",
        operation=Operation(
            "The program's tier colours as CSS classes (`.tier-<key>`), for the card page",
            {200: Reply("the stylesheet", media_type="text/css"), 404: Reply("no such program", media_type="text/css")},
            params=(_PROGRAM,),
        ),
    ),
    ApiRoute(
        "/static/badges/{name}",
        card_page.badge,
        method="GET",
        operation=Operation(
            "A wallet badge of the card page (from WALLET_BADGES_DIR, else the shipped stand-ins)",
            {200: Reply("the artwork", media_type="image/svg+xml"), 404: Reply("no such badge", media_type=None)},
            params=(Param("name", {"pattern": r"^(apple|google)-wallet-(ru|en)\.svg$"}, "path"),),
        ),
    ),
    ApiRoute(
        "/v1/programs/{program}/preview.png",
        program_preview,
        method="GET",
        operation=Operation(
            "The front of the program's Apple pass for a tier, drawn as PNG (a preview, not the pass)",
            {200: Reply("the image", media_type=assets.PNG_TYPE)},
            security=_MARKETING,
            params=(
                _PROGRAM,
                Param("tier", {"type": "string"}, description="a tier key; the first tier without it"),
                Param("locale", {"type": "string"}, description="one of the program's locales; its default without it"),
            ),
            errors={400: ("invalid_query",), 404: ("unknown_program",)},
        ),
    ),
    ApiRoute(
        "/assets/{program}/{name}.png",
        assets.program_asset,
        method="GET",
        operation=Operation(
            "A pass image of a program (public: Google Wallet fetches the class's logo from here)",
            {
                200: Reply(
                    "the image, from the program's template",
                    media_type=assets.PNG_TYPE,
                    headers={"Cache-Control": assets.CACHE_CONTROL, "ETag": "the image's digest"},
                ),
                304: Reply(
                    "not modified since If-None-Match",
                    media_type=None,
                    headers={"Cache-Control": assets.CACHE_CONTROL, "ETag": "the image's digest"},
                ),
            },
            description="Only the images the program's template has (`logo`, `icon`, `strip`, each also "
            "`@2x` and `@3x`); any other name is 404. No listing.",
            params=(
                Param("program", {"pattern": "^[a-z][a-z0-9_-]*$"}, "path", description="the program's key"),
                Param(
                    "name",
                    {"pattern": "^[a-z][a-z0-9_-]*(@[23]x)?$"},
                    "path",
                    description="the image's name without `.png`, e.g. `logo@3x`",
                ),
                Param("If-None-Match", {"type": "string"}, "header"),
            ),
            errors={404: ("unknown_program", "unknown_asset")},
        ),
    ),
    ApiRoute(
        "/v1/programs",
        ops.programs,
        method="GET",
        operation=Operation(
            "Programs and their tiers",
            {200: Reply("every loaded program", schemas.PROGRAMS)},
            params=(
                Param(
                    "locale",
                    {"type": "string"},
                    description="texts in this locale where the program has it, else in its default locale",
                ),
            ),
        ),
    ),
    ApiRoute(
        "/v1/ledger/events",
        ledger.post_events,
        method="POST",
        operation=Operation(
            "Balance and tier changes from the ledger backend",
            {202: Reply("each event's id under its outcome", schemas.LEDGER_RESULT)},
            description="A repeated `id` changes nothing (`duplicate`); a `version` not above the stored one "
            "changes nothing (`stale`). Each accepted event is durable before the answer.",
            body=schemas.LEDGER_POST,
            security=LEDGER_SIGNATURE,
            errors={413: ("too_many_events",)},
        ),
    ),
    ApiRoute(
        REGISTRATION,
        passkit.register,
        method="POST",
        operation=Operation(
            "Register a device for the pass's updates",
            {
                201: Reply("registered", media_type=None),
                200: Reply("already registered (a changed push token is stored)", media_type=None),
            },
            body=schemas.REGISTRATION,
            body_errors=("invalid_field",),
            security=APPLE_PASS,
            params=(_DEVICE, _PASS_TYPE, _SERIAL_NUMBER),
            errors=_PASSKIT_ERRORS,
        ),
    ),
    ApiRoute(
        REGISTRATION,
        passkit.unregister,
        method="DELETE",
        operation=Operation(
            "Unregister a device",
            {200: Reply("unregistered", media_type=None)},
            security=APPLE_PASS,
            params=(_DEVICE, _PASS_TYPE, _SERIAL_NUMBER),
            errors=_PASSKIT_ERRORS,
        ),
    ),
    ApiRoute(
        ATTIDO_REGISTRATION,
        passkit.register_attido,
        method="POST",
        operation=Operation(
            "Register a PassWallet device (its push goes to the pushServiceUrl it names)",
            {
                201: Reply("registered", media_type=None),
                200: Reply("already registered (a changed push token or service is stored)", media_type=None),
            },
            description="`pushServiceUrl` must be https on a host listed in WALLET_RELAY_PASSWALLET_HOSTS; "
            "any other is refused with 400 and nothing is stored.",
            body=schemas.ATTIDO_REGISTRATION,
            body_errors=("invalid_field",),
            security=APPLE_PASS,
            params=(_DEVICE, _PASS_TYPE, _SERIAL_NUMBER),
            errors=_PASSKIT_ERRORS,
        ),
    ),
    ApiRoute(
        ATTIDO_REGISTRATION,
        passkit.unregister_attido,
        method="DELETE",
        operation=Operation(
            "Unregister a PassWallet device",
            {200: Reply("unregistered", media_type=None)},
            security=APPLE_PASS,
            params=(_DEVICE, _PASS_TYPE, _SERIAL_NUMBER),
            errors=_PASSKIT_ERRORS,
        ),
    ),
    ApiRoute(
        REGISTRATIONS,
        passkit.serials,
        method="GET",
        operation=Operation(
            "Serial numbers of the device's passes changed since a tag",
            {200: Reply("the changed passes", schemas.SERIALS), 204: Reply("none changed", media_type=None)},
            params=(
                _DEVICE,
                _PASS_TYPE,
                Param(
                    "passesUpdatedSince",
                    {"type": "string"},
                    description="a lastUpdated tag; without it every pass is listed",
                ),
            ),
            errors=_PASSKIT_ERRORS,
        ),
    ),
    ApiRoute(
        "/passkit/v1/passes/{passTypeIdentifier}/{serialNumber}",
        passkit.latest_pass,
        method="GET",
        operation=Operation(
            "The latest version of the pass",
            {
                200: Reply("the signed pass", media_type=cards.PKPASS_TYPE, headers=_PASS_HEADERS),
                304: Reply(
                    "not modified since If-Modified-Since",
                    media_type=None,
                    headers={"Last-Modified": "when the pass last changed"},
                ),
            },
            security=APPLE_PASS,
            params=(_PASS_TYPE, _SERIAL_NUMBER, Param("If-Modified-Since", {"type": "string"}, "header")),
            errors=_PASSKIT_ERRORS,
        ),
    ),
    ApiRoute(
        "/passkit/v1/log",
        passkit.log,
        method="POST",
        operation=Operation(
            "Log messages from Wallet (kept, bounded, visible to admin)",
            {200: Reply("kept", media_type=None)},
            body=schemas.DEVICE_LOG,
            body_errors=("invalid_field",),
            errors=_RATE_LIMITED,
        ),
    ),
    ApiRoute(
        "/google/callbacks",
        google_callback,
        method="POST",
        operation=Operation(
            "Google Wallet save/delete callbacks (ECv2SigningOnly, verified before anything is recorded)",
            {200: Reply("recorded, or a nonce recorded before (nothing new is)", CALLBACK_RESULT)},
            description="Verified against Google's root keys (WALLET_GOOGLE_KEYS_URL, cached until they expire), "
            "with sender id WALLET_GOOGLE_SENDER_ID and this service's issuer id; each `nonce` is recorded once. "
            "Anything unverified is refused (400/401) and nothing is recorded; while the root keys cannot be "
            "fetched the answer is 503 with Retry-After (Google retries).",
            body=CALLBACK,
            body_errors=(INVALID_CALLBACK,),
            errors={
                401: (UNVERIFIED_CALLBACK,),
                404: (GOOGLE_WALLET_OFF,),
                **_RATE_LIMITED,
                503: (KEYS_UNAVAILABLE,),
            },
        ),
    ),
    ApiRoute(
        "/v1/admin/device-logs",
        admin.device_logs,
        method="GET",
        operation=Operation(
            "Log messages devices sent, newest first",
            {200: Reply("messages", schemas.DEVICE_LOGS)},
            security=_ADMIN,
            params=_LIMIT,
            errors=_ADMIN_ERRORS,
        ),
    ),
    ApiRoute(
        "/v1/admin/pushes",
        admin.pushes,
        method="GET",
        operation=Operation(
            "The push journal (dry runs and deliveries), newest first",
            {200: Reply("records", schemas.PUSHES)},
            security=_ADMIN,
            params=_LIMIT,
            errors=_ADMIN_ERRORS,
        ),
    ),
    ApiRoute(
        "/v1/admin/dead-letters",
        admin.dead_letters,
        method="GET",
        operation=Operation(
            "Pushes that failed for good, newest first",
            {200: Reply("dead letters", schemas.DEAD_LETTERS)},
            security=_ADMIN,
            params=(*_LIMIT, Param("before", {"type": "string"}, description="only dead letters older than this id")),
            errors=_ADMIN_ERRORS,
        ),
    ),
    ApiRoute(
        "/v1/admin/dead-letters/requeue",
        admin.requeue_dead_letters,
        method="POST",
        operation=Operation(
            "Put dead letters back into the outbox (once what failed them is fixed)",
            {200: Reply("the dead letters put back", schemas.DEAD_LETTERS_REQUEUED)},
            description="`id` (repeatable) names them; without it the oldest `limit` (default 100) go back. "
            "Each moves atomically: it is in the outbox or among the dead letters, never both.",
            security=_ADMIN,
            params=(
                Param(
                    "id",
                    {
                        "type": "array",
                        "items": {"type": "string", "pattern": admin.DEAD_LETTER_ID_RE.pattern},
                        "maxItems": admin.MAX_REQUEUE_IDS,
                    },
                    description="a dead letter's id (repeat for more)",
                ),
                Param("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
            ),
            errors=_ADMIN_ERRORS,
        ),
    ),
    ApiRoute(
        "/v1/members/{card}/export",
        members.export_member,
        method="GET",
        operation=Operation(
            "Everything stored about the member of a card (a data-subject access request)",
            {200: Reply("the member's data", schemas.MEMBER_EXPORT)},
            security=_ADMIN,
            params=(_MEMBER_CARD,),
            errors={404: ("unknown_card",)},
        ),
    ),
    ApiRoute(
        "/v1/members/{card}",
        members.erase_member,
        method="DELETE",
        operation=Operation(
            "Erase the member's personal data; void the passes (idempotent)",
            {200: Reply("erased (now or before)", schemas.MEMBER_ERASED)},
            description="Name, phone, e-mail, consents, app and push tokens, location area and alert history go; "
            "the card number and ledger figures stay for accounting. The Apple pass is voided and pushed, then "
            "its registrations are dropped; the Google Wallet object becomes INACTIVE; vouchers are voided too.",
            security=_ADMIN,
            params=(_MEMBER_CARD,),
            errors={404: ("unknown_card",)},
        ),
    ),
    ApiRoute(
        "/v1/stores/{id}",
        stores.put_store,
        method="PUT",
        operation=Operation(
            "Create or replace a store",
            {201: Reply("created", schemas.STORE_LOCATION), 200: Reply("replaced", schemas.STORE_LOCATION)},
            description="Without `timezone` the zone is derived offline from the coordinates.",
            body=stores.STORE,
            body_errors=("invalid_field",),
            security=_MARKETING,
            params=(_STORE_ID,),
            errors={400: ("invalid_path",), 404: ("unknown_program",)},
        ),
    ),
    ApiRoute(
        "/v1/stores/{id}",
        stores.delete_store,
        method="DELETE",
        operation=Operation(
            "Delete a store",
            {200: Reply("deleted", schemas.STORE_DELETED)},
            security=_MARKETING,
            params=(_STORE_ID,),
            errors={400: ("invalid_path",), 404: ("unknown_store",)},
        ),
    ),
    ApiRoute(
        "/v1/stores",
        stores.list_stores,
        method="GET",
        operation=Operation(
            "Stores, by id; with `near`, those within `radius_m`, nearest first with their distances",
            {200: Reply("the stores", schemas.STORES)},
            security=_MARKETING,
            params=(
                Param("program", {"type": "string"}, description="only this program's stores"),
                Param(
                    "near",
                    {"type": "string", "pattern": "^[^,]+,[^,]+$"},
                    description=f"`lat,lon`: the stores around this point, nearest first (at most {stores.NEAR_LIMIT})",
                ),
                Param(
                    "radius_m",
                    {
                        "type": "number",
                        "exclusiveMinimum": 0,
                        "maximum": stores.RADIUS_MAX_M,
                        "default": stores.RADIUS_DEFAULT_M,
                    },
                    description="metres around `near` (only with it)",
                ),
            ),
            errors={400: ("invalid_query",)},
        ),
    ),
    ApiRoute(
        "/v1/stores/import",
        stores.import_stores,
        method="POST",
        operation=Operation(
            "Import stores from CSV or GeoJSON, all or nothing",
            {200: Reply("every row stored", schemas.STORES_IMPORTED)},
            description="Content-Type `text/csv` (UTF-8, header row, `;` or `,`) or `application/geo+json` / "
            "`application/json` (a FeatureCollection). Any bad row (coordinates, unknown program, an id twice, "
            "bad zone, missing column) refuses the whole file with 400 `invalid_rows` whose `errors` list every "
            "one as `{line, reason}` (CSV: the file's line; GeoJSON: the feature's position from 1; 0: the "
            f"whole file). At most {stores.IMPORT_MAX_ROWS} rows.",
            body=schemas.STORE_IMPORT,
            body_errors=("invalid_rows",),
            security=_MARKETING,
            errors={415: ("unsupported_media_type",)},
        ),
    ),
    ApiRoute(
        "/v1/cards/import",
        imports.import_cards,
        method="POST",
        operation=Operation(
            "Import an existing member base from CSV: validated all or nothing, then cards made by a job",
            {
                202: Reply("every row valid: the job that makes the cards", schemas.IMPORT_ACCEPTED),
                422: Reply("bad rows, nothing stored: every problem with its line and column", schemas.IMPORT_REFUSED),
            },
            description="Content-Type `text/csv`: UTF-8, a header row, `;` or `,`, the columns "
            f"{', '.join(service_imports.COLUMNS)} (account and name required, any order). At most "
            f"{service_imports.MAX_ROWS} rows and {service_imports.MAX_BYTES} bytes. Phones are read in the "
            "program's region (RU unless its template says `region`) and stored in E.164. An account "
            "that already has a card in the program keeps it (its row's balance is not applied: the ledger "
            "owns points); one with a card in another program fails the job before any card is made. "
            "`welcome_bonus` is recorded for the ledger backend to credit, not credited here.",
            security=bearer("issuer"),
            params=(
                Param("program", {"type": "string"}, required=True, description="a program of GET /v1/programs"),
                Param(
                    "welcome_bonus",
                    {"type": "integer", "minimum": 0, "maximum": POINTS_MAX, "default": 0},
                    description="points per member for the ledger to confirm (in the job and result.csv)",
                ),
            ),
            errors={
                400: ("invalid_query",),
                404: ("unknown_program",),
                413: ("payload_too_large",),
                415: ("unsupported_media_type",),
            },
        ),
    ),
    ApiRoute(
        "/v1/jobs/{id}",
        imports.get_job,
        method="GET",
        operation=Operation(
            "An import job's progress",
            {200: Reply("the job", schemas.IMPORT_JOB)},
            description="A job whose runner died (a crash mid-way) is resumed by the next look at it.",
            security=bearer("issuer"),
            params=(Param("id", {"pattern": imports.JOB_ID_RE.pattern}, "path"),),
            errors={404: ("unknown_job",)},
        ),
    ),
    ApiRoute(
        "/v1/jobs/{id}/result.csv",
        imports.job_result,
        method="GET",
        operation=Operation(
            "A finished import's cards: `account,card,link` per row, in file order",
            {
                200: Reply(
                    "CSV with a header row; `link` is the card page (signed, expiring); a `welcome_bonus` column "
                    "when the job has one",
                    media_type="text/csv",
                )
            },
            security=bearer("issuer"),
            params=(Param("id", {"pattern": imports.JOB_ID_RE.pattern}, "path"),),
            errors={404: ("unknown_job",), 409: ("job_not_done",)},
        ),
    ),
    ApiRoute(
        "/v1/campaigns",
        campaigns.create_campaign,
        method="POST",
        operation=Operation(
            "Create a geo-campaign",
            {201: Reply("created, with its generated id", schemas.CAMPAIGN)},
            description="Checked whole before anything is stored: the text's placeholders and its rendered "
            "length (at most 80 characters for every card and store), the program's tiers and stores, the "
            "schedule (ends_at after starts_at). The program's passes are re-evaluated right after.",
            body=campaigns.NEW_CAMPAIGN,
            body_errors=("invalid_field", "unknown_program"),
            security=_MARKETING,
        ),
    ),
    ApiRoute(
        "/v1/campaigns",
        campaigns.list_campaigns,
        method="GET",
        operation=Operation(
            "Campaigns, by id",
            {200: Reply("the campaigns", schemas.CAMPAIGNS)},
            security=_MARKETING,
            params=(Param("program", {"type": "string"}, description="only this program's campaigns"),),
        ),
    ),
    ApiRoute(
        "/v1/campaigns/{id}",
        campaigns.get_campaign,
        method="GET",
        operation=Operation(
            "A campaign",
            {200: Reply("the campaign", schemas.CAMPAIGN)},
            security=_MARKETING,
            params=(_CAMPAIGN_ID,),
            errors=_CAMPAIGN_ERRORS,
        ),
    ),
    ApiRoute(
        "/v1/campaigns/{id}",
        campaigns.patch_campaign,
        method="PATCH",
        operation=Operation(
            "Change some of a campaign's fields",
            {200: Reply("the campaign as stored now", schemas.CAMPAIGN)},
            description="The merged campaign is checked whole, as on creation; `program` may not change (400). "
            "Nothing is stored on an error.",
            body=campaigns.CAMPAIGN_PATCH,
            body_errors=("invalid_field", "unknown_program"),
            security=_MARKETING,
            params=(_CAMPAIGN_ID,),
            errors=_CAMPAIGN_ERRORS,
        ),
    ),
    ApiRoute(
        "/v1/campaigns/{id}",
        campaigns.delete_campaign,
        method="DELETE",
        operation=Operation(
            "Delete a campaign (its stores leave the passes)",
            {200: Reply("deleted", schemas.CAMPAIGN_DELETED)},
            security=_MARKETING,
            params=(_CAMPAIGN_ID,),
            errors=_CAMPAIGN_ERRORS,
        ),
    ),
    ApiRoute(
        "/v1/campaigns/{id}/preview",
        campaigns.preview_campaign,
        method="POST",
        operation=Operation(
            "Which cards meet the campaign's conditions now: counts per tier and sample texts",
            {200: Reply("the reach", schemas.CAMPAIGN_PREVIEW)},
            description="Counts the cards meeting `when` whether or not the campaign runs now (`active` says). "
            f"Up to {campaigns.PREVIEW_SAMPLES} samples, rendered at the campaign's first store (or the "
            "program's), card numbers cut to their last 4 digits.",
            security=_MARKETING,
            params=(_CAMPAIGN_ID,),
            errors=_CAMPAIGN_ERRORS,
        ),
    ),
    ApiRoute(
        "/v1/messages",
        messages.send_message,
        method="POST",
        operation=Operation(
            "Send a message to the program's cards that meet `when`",
            {202: Reply("queued: a job shows it on each card's pass", schemas.MESSAGE_QUEUED)},
            description="Shown on the pass's back with a change message and as a Google Wallet message. "
            f"The text may use {{balance}} {{tier}} {{name}} and must render within {messages.MESSAGE_MAX} "
            "characters; nothing is queued on an error.",
            body=messages.MESSAGE,
            body_errors=("invalid_field", "unknown_program"),
            security=_MARKETING,
        ),
    ),
    ApiRoute(
        "/v1/messages/{id}",
        messages.get_message,
        method="GET",
        operation=Operation(
            "A message and how far its delivery got",
            {200: Reply("the message", schemas.MESSAGE_STATE)},
            security=_MARKETING,
            params=(Param("id", {"pattern": campaigns.ID_RE.pattern}, "path", description="the message's id"),),
            errors={400: ("invalid_path",), 404: ("unknown_message",)},
        ),
    ),
    ApiRoute(
        "/v1/apps/devices",
        apps.register_device,
        method="POST",
        operation=Operation(
            "Register the companion app's push token for the card (FCM on android, APNs on ios)",
            {200: Reply("registered (again: the token's time is refreshed)", schemas.APP_DEVICE_REGISTERED)},
            description=f"At most {apps.APP_TOKENS_MAX} installs per card: a new one beyond that replaces the "
            "least recently registered.",
            body=apps.APP_DEVICE,
            body_errors=("invalid_field",),
            security=apps.CARD_APP,
            errors={429: ("rate_limited",)},
        ),
    ),
    ApiRoute(
        "/v1/geo/ping",
        apps.geo_ping,
        method="POST",
        operation=Operation(
            "The app's position: may send a \"shop nearby\" alert to the card's app installs",
            {200: Reply("which rule applied, and the store it was about", schemas.GEO_PING_RESULT)},
            description="Only the ~1 km cell of the position is kept (the member's area, which orders the "
            "pass's locations); the position itself is not. Within `radius_m` of a store of an active campaign "
            "the card qualifies for (the nearest such store), an alert is sent, at most `max_per_day` per "
            "campaign, never for the same store twice within 24 h, never 22:00-08:00 in the store's zone. "
            "Pings are rate-limited per card (WALLET_RATE_GEO_PING).",
            body=apps.GEO_PING,
            body_errors=("invalid_field",),
            security=apps.CARD_APP,
            errors={409: ("no_app_device",), 429: ("rate_limited",)},
        ),
    ),
    ApiRoute(
        "/v1/certificates",
        vouchers.create_certificate,
        method="POST",
        operation=Operation(
            "A gift certificate from the ledger backend: a pass of its own (idempotent per id)",
            {
                201: Reply("issued", schemas.VOUCHER_ISSUED),
                200: Reply("the certificate issued before under this id", schemas.VOUCHER_ISSUED),
            },
            description="Apple `storeCard` (amount, the code as barcode, the PIN on the back, `expirationDate`) "
            "and, while Google Wallet is on, a GiftCardObject. A card held on a device gets a change message on "
            "its loyalty pass. The code and PIN are never logged; only the admin key reads them back.",
            body=vouchers.NEW_CERTIFICATE,
            body_errors=("invalid_field",),
            security=LEDGER_SIGNATURE,
            errors={404: ("unknown_card",)},
        ),
    ),
    ApiRoute(
        "/v1/certificates/{id}",
        vouchers.get_certificate,
        method="GET",
        operation=Operation(
            "A gift certificate (its code and PIN only to the admin key)",
            {200: Reply("the certificate", schemas.VOUCHER_STATE)},
            security=bearer("issuer"),
            params=(_VOUCHER_ID,),
            errors={400: ("invalid_path",), 404: ("unknown_voucher",)},
        ),
    ),
    ApiRoute(
        "/v1/certificates/{id}/redeem",
        vouchers.redeem_certificate,
        method="POST",
        operation=Operation(
            "Redeem a gift certificate: voided on Apple Wallet and Google Wallet, pushed to its devices",
            {200: Reply("redeemed (again: nothing changes)", schemas.VOUCHER_REDEEMED)},
            description="The body is empty or `{}`; the signature covers it as for ledger posts.",
            security=LEDGER_SIGNATURE,
            params=(_VOUCHER_ID,),
            errors={400: ("invalid_path",), 404: ("unknown_voucher",), 503: ("unavailable",)},
        ),
    ),
    ApiRoute(
        "/v1/offers",
        vouchers.create_offer,
        method="POST",
        operation=Operation(
            "An offer (coupon) from the ledger backend, for one card or a segment (idempotent per id)",
            {
                201: Reply("issued to the card", schemas.VOUCHER_ISSUED),
                200: Reply("the offer issued before under this id", schemas.VOUCHER_ISSUED),
                202: Reply("a segment: a job gives each qualifying card its own", schemas.OFFER_QUEUED),
            },
            description="Apple `coupon` (title, code barcode, expiry, up to 10 of its stores as locations) and, "
            "while Google Wallet is on, an OfferObject. `segment` selects cards as a campaign's `when` and a "
            "message's `stores` do.",
            body=vouchers.NEW_OFFER,
            body_errors=("invalid_field", "unknown_program"),
            security=LEDGER_SIGNATURE,
            errors={404: ("unknown_card",)},
        ),
    ),
    ApiRoute(
        "/v1/vouchers/{serial}.pkpass",
        vouchers.download_voucher,
        method="GET",
        operation=Operation(
            "The signed .pkpass of a certificate or an offer (a signed, expiring link; no key needed)",
            {
                200: Reply(
                    "the pass",
                    media_type=cards.PKPASS_TYPE,
                    headers={**_PASS_HEADERS, "Content-Disposition": "attachment with the program's name"},
                )
            },
            params=_SIGNED_LINK,
            errors={**_LINK_ERRORS, **_RATE_LIMITED},
        ),
    ),
    _report_route(
        "/v1/reports/installs",
        reports.installs_report,
        "Passes added and removed per day, program, platform and tier",
        Reply(
            "rows by day, program, platform (Apple Wallet, each Android app, Google Wallet), tier",
            schemas.REPORT_INSTALLS,
            also=("text/csv",),
        ),
        "Counted when they happen: a new PassKit registration is an install of its app, an unregistration "
        "(or a registration dropped as stale or evicted) a removal; Google Wallet's save and del callbacks "
        "likewise. The tier is the card's when the pass was added.",
        Param("program", {"type": "string"}, description="only this program (another: 400)"),
    ),
    _report_route(
        "/v1/reports/pushes",
        reports.pushes_report,
        "Pushes per day, channel and result (from the push journal)",
        Reply("rows by day, channel, result", schemas.REPORT_PUSHES, also=("text/csv",)),
        "Every push journal record is counted once, on the day it was recorded. Not per program (`program`: 400).",
    ),
    _report_route(
        "/v1/reports/campaigns",
        reports.campaigns_report,
        "Per campaign of a program: cards qualifying, passes carrying it, alerts decided",
        Reply(
            "one row per campaign by id, then campaigns deleted since with alerts in the period",
            schemas.REPORT_CAMPAIGNS,
            headers={"X-Report-Complete": "false when the card limit stopped the count"},
            also=("text/csv",),
        ),
        "`qualifying` and `carrying` are the cards as stored now (from/to do not apply to them); the alert "
        "counts are the geo pings' decisions in the period. A pass carries a campaign when its stored "
        "locations hold one of the campaign's stores with its text and radius, or its notice is the "
        f"campaign's announce. At most {reports.CARDS_MAX} cards are read (by number): beyond, `complete` "
        "is false.",
        Param("program", {"type": "string"}, required=True, description="a program of GET /v1/programs"),
    ),
    ApiRoute(
        "/healthz",
        ops.healthz,
        method="GET",
        operation=Operation(
            "The process is alive",
            {200: Reply("alive", schemas.HEALTH)},
        ),
    ),
    ApiRoute(
        "/readyz",
        ops.readyz,
        method="GET",
        operation=Operation(
            "The store answers and the certificates are valid; days to each certificate's expiry",
            {200: Reply("ready", schemas.READINESS), 503: Reply("not ready", schemas.READINESS)},
        ),
    ),
    ApiRoute(
        "/metrics",
        ops.metrics,
        method="GET",
        operation=Operation(
            "Prometheus metrics",
            {200: Reply("text exposition format", media_type="text/plain")},
        ),
    ),
    ApiRoute(
        "/openapi.json",
        ops.openapi,
        method="GET",
        operation=Operation(
            "This document (OpenAPI 3.1)",
            {200: Reply("the document")},
        ),
    ),
    ApiRoute(
        "/docs",
        ops.docs,
        method="GET",
        operation=Operation(
            "This document, rendered (Swagger UI)",
            {200: Reply("the page", media_type="text/html")},
        ),
    ),
]

# Swagger UI's own files, from its package; the page and its start script are ours (web/static/docs/)
STATIC_MOUNTS: list[BaseRoute] = [
    Mount("/docs/static/swagger-ui", app=StaticFiles(packages=[("swagger_ui", "static")]), name="swagger-ui"),
    Mount("/docs/static", app=StaticFiles(directory=ops.DOCS_DIR), name="docs-static"),
    # the pages' files; Leaflet from its xstatic package (no CDN at run time)
    Mount("/static/leaflet", app=StaticFiles(directory=leaflet.BASE_DIR), name="leaflet"),
    Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
]

# the marketing console's pages (web/console/routes.py)
ROUTES: list[BaseRoute] = [*API_ROUTES, *CONSOLE_ROUTES, *STATIC_MOUNTS]
