"""The console's entries of the route table (web/routes.py adds them): HTML pages and form posts. Without
a session every one answers 302 to the login form; POSTs answer 403 without a valid CSRF token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from web.campaigns import ID_RE as CAMPAIGN_ID_RE
from web.console import campaigns, login, messages, reports, stores
from web.routing import ApiRoute, Operation, Param, Reply
from web.stores import ID_RE as STORE_ID_RE

_HTML = "text/html"
_TO_LOGIN = Reply("no session: to the login form", media_type=None, headers={"Location": "/console/login"})
_PAGE = {200: Reply("the page", media_type=_HTML), 302: _TO_LOGIN}
_DONE = {
    303: Reply("done: to the page that shows it", media_type=None, headers={"Location": "the page"}),
    302: _TO_LOGIN,
    400: Reply("the form again, with what is wrong next to it", media_type=_HTML),
    403: Reply("no valid CSRF token: nothing done", media_type=_HTML),
}
_STORE_ID = Param("id", {"pattern": STORE_ID_RE.pattern}, "path", description="the store's id")
_CAMPAIGN_ID = Param("id", {"pattern": CAMPAIGN_ID_RE.pattern}, "path", description="the campaign's id")
_FORM = "Form fields (application/x-www-form-urlencoded or multipart/form-data) with the page's `csrf` token."


def _page(
    path: str, endpoint: Callable[..., Any], summary: str, params: tuple[Param, ...] = (), **replies: Reply
) -> ApiRoute:
    answers = {**_PAGE, **{int(status[1:]): reply for status, reply in replies.items()}}
    return ApiRoute(path, endpoint, method="GET", operation=Operation(summary, answers, params=params))


def _post(
    path: str, endpoint: Callable[..., Any], summary: str, params: tuple[Param, ...] = (), **replies: Reply
) -> ApiRoute:
    answers = {**_DONE, **{int(status[1:]): reply for status, reply in replies.items()}}
    return ApiRoute(
        path, endpoint, method="POST", operation=Operation(summary, answers, description=_FORM, params=params)
    )


CONSOLE_ROUTES: list[ApiRoute] = [
    ApiRoute(
        "/console",
        login.console_home,
        method="GET",
        operation=Operation(
            "The console: to its first page (stores), or to the login form without a session",
            {302: Reply("to /console/stores, or to the login form", media_type=None, headers={"Location": "where"})},
        ),
    ),
    ApiRoute(
        "/console/login",
        login.console_login_form,
        method="GET",
        operation=Operation("The console's login form", {200: Reply("the form", media_type=_HTML)}),
    ),
    ApiRoute(
        "/console/login",
        login.console_login,
        method="POST",
        operation=Operation(
            "Sign in with a marketing or admin API key: a signed session cookie (the key is not kept)",
            {
                303: Reply(
                    "signed in (Set-Cookie wallet_console), to /console/stores; or, from a browser without the "
                    "CSRF cookie, back to the form",
                    media_type=None,
                    headers={"Location": "/console/stores or /console/login"},
                ),
                401: Reply("the form again: not a marketing or admin key", media_type=_HTML),
                400: Reply("the form again: no valid CSRF token (nothing checked)", media_type=_HTML),
                429: Reply(
                    "too many attempts from this address (WALLET_RATE_PAGES)",
                    media_type=_HTML,
                    headers={"Retry-After": "seconds"},
                ),
            },
            description="Form fields `key` and `csrf`.",
        ),
    ),
    ApiRoute(
        "/console/logout",
        login.console_logout,
        method="POST",
        operation=Operation(
            "Sign out (the session cookie is cleared)",
            {
                303: Reply("to the login form", media_type=None, headers={"Location": "/console/login"}),
                302: _TO_LOGIN,
                403: Reply("no valid CSRF token", media_type=_HTML),
            },
            description="Form field `csrf`.",
        ),
    ),
    _page("/console/stores", stores.console_stores, "Stores: table, search (`q`), edit form (`edit`), import, map"),
    _post("/console/stores", stores.console_save_store, "Create or replace a store (as PUT /v1/stores/{id})"),
    _post(
        "/console/stores/import",
        stores.console_import_stores,
        "Import stores from a CSV or GeoJSON file (multipart `file`)",
    ),
    _post("/console/stores/{id}/delete", stores.console_delete_store, "Delete a store", (_STORE_ID,)),
    _page("/console/campaigns", campaigns.console_campaigns, "Campaigns: the list and the new-campaign form"),
    _post("/console/campaigns", campaigns.console_create_campaign, "Create a campaign (as POST /v1/campaigns)"),
    _page(
        "/console/campaigns/{id}",
        campaigns.console_campaign,
        "A campaign: edit form, map of its stores and radii, preview (texts, pass fronts, reach by tier)",
        (_CAMPAIGN_ID,),
        s303=Reply("no such campaign: to the list", media_type=None, headers={"Location": "/console/campaigns"}),
    ),
    _post(
        "/console/campaigns/{id}", campaigns.console_update_campaign, "Change a campaign (as PATCH)", (_CAMPAIGN_ID,)
    ),
    _post(
        "/console/campaigns/{id}/pause",
        campaigns.console_pause_campaign,
        "Pause (`paused=1`) or resume (`paused=0`) a campaign",
        (_CAMPAIGN_ID,),
    ),
    _post("/console/campaigns/{id}/delete", campaigns.console_delete_campaign, "Delete a campaign", (_CAMPAIGN_ID,)),
    ApiRoute(
        "/console/preview/{program}.png",
        campaigns.console_pass_front,
        method="GET",
        operation=Operation(
            "The pass front of a tier as the console previews it",
            {
                200: Reply("the image", media_type="image/png"),
                302: _TO_LOGIN,
                404: Reply("no such program or tier (or no renderer)", media_type=None),
            },
            params=(
                Param("program", {"pattern": "^[a-z][a-z0-9_-]*$"}, "path", description="the program's key"),
                Param("tier", {"type": "string"}, required=True, description="a tier key of the program"),
                Param("locale", {"type": "string"}, description="a locale of the program (else its default)"),
            ),
        ),
    ),
    _page("/console/messages", messages.console_messages, "Messages: compose, segment, preview, history"),
    _post(
        "/console/messages",
        messages.console_send_message,
        "Preview (`action=preview`: the page with sample texts and reach) or send (`action=send`) a message",
        s200=Reply("the preview: the page with the sample texts and the reach", media_type=_HTML),
    ),
    _page("/console/pushes", reports.console_pushes, "Push history (the push journal, newest first)"),
    _page("/console/reports", reports.console_reports, "Reports: pushes per day by result, campaign reach by tier"),
]
