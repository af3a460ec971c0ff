"""Signing in to the console: a marketing or admin API key opens a session (a signed cookie holding the
role only; the key itself is never stored, echoed or logged), signing out closes it."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from web.auth import role_of
from web.console.common import Console, console_route, language_of, page, see_other, strings_for
from web.pages.security import (
    CSRF_COOKIE,
    CSRF_FIELD,
    clear_session_cookie,
    csrf_valid,
    read_form,
    set_session_cookie,
)
from web.ratelimit import rule
from web.services import services_of

CONSOLE_ROLES = ("marketing", "admin")
KEY_MAX = 200
HOME = "/console/stores"


def _login_form(
    request: Request, *, error: str = "", status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    language = language_of(request)
    return page(
        request, "console/login.html", {"error": error}, language=language, status_code=status_code, headers=headers
    )


async def console_login_form(request: Request) -> Response:
    return _login_form(request)


async def console_login(request: Request) -> Response:
    services = services_of(request)
    settings = services.settings
    language = language_of(request)
    if CSRF_COOKIE not in request.cookies:
        # no CSRF cookie: this browser never loaded the form (or is posting from another site, where
        # SameSite=Lax withholds it); it gets the form, nothing is checked
        return see_other("/console/login")
    address = request.client.host if request.client else "unknown"
    wait = await services.limiter.retry_after(rule(settings.pages_rate), "console-login", address)
    if wait is not None:
        message = strings_for(language)["too_many"].format(seconds=wait)
        return _login_form(request, error=message, status_code=429, headers={"Retry-After": str(wait)})
    form = await read_form(request, max_files=0, max_fields=10)
    token = form.get(CSRF_FIELD) if form is not None else None
    if form is None or not csrf_valid(request, settings, token if isinstance(token, str) else None):
        # refused like every other console POST, but answered with the form itself (a fresh token) and
        # 400: nobody is signed in yet, so this is an expired form, not a forbidden act
        return _login_form(request, error=strings_for(language)["csrf_text"], status_code=400)
    key = form.get("key")
    role = role_of(settings.api_keys, key.strip()) if isinstance(key, str) and 0 < len(key) <= KEY_MAX else None
    if role is None or role not in CONSOLE_ROLES:
        return _login_form(request, error=strings_for(language)["wrong_key"], status_code=401)
    response = RedirectResponse(HOME, status_code=303)
    set_session_cookie(response, settings, role)
    return response


@console_route
async def console_logout(console: Console) -> Response:
    response = see_other("/console/login")
    clear_session_cookie(response, console.services.settings)
    return response


@console_route
async def console_home(console: Console) -> Response:
    return RedirectResponse(HOME, status_code=302)
