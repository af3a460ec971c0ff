"""What every console page shares: the session guard (no session: 302 to the login form), the CSRF
check of every POST (403 page), rendering with the console's words, and reading forms."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from web.pages.console_strings import CONSOLE_STRINGS
from web.pages.security import CSRF_FIELD, csrf_token_for, csrf_valid, read_form, session_role, set_csrf_cookie
from web.pages.strings import Strings
from web.pages.templating import LANGUAGES, choose_language, render
from web.services import Services, services_of

LOGIN_PATH = "/console/login"
# a page's form fields are small; a store import file is bounded by web/body.py's MAX_BODY as a whole
FORM_MAX_FIELDS = 2000


@dataclass(frozen=True)
class Console:
    """The request as a console page sees it: the session's role, the language and the posted form."""

    request: Request
    role: str
    language: str
    form: FormData | None = None

    @property
    def services(self) -> Services:
        return services_of(self.request)

    @property
    def strings(self) -> Strings:
        return strings_for(self.language)

    def field(self, name: str) -> str:
        value = self.form.get(name) if self.form is not None else None
        return value.strip() if isinstance(value, str) else ""

    def fields(self, name: str) -> list[str]:
        if self.form is None:
            return []
        return [v.strip() for v in self.form.getlist(name) if isinstance(v, str) and v.strip()]


def strings_for(language: str) -> Strings:
    return CONSOLE_STRINGS.get(language, CONSOLE_STRINGS["en"])


def language_of(request: Request) -> str:
    return choose_language(request, LANGUAGES, "en")


def page(
    request: Request,
    name: str,
    context: Mapping[str, Any],
    *,
    language: str,
    role: str | None = None,
    section: str = "",
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A console template with the console's words `c`, the CSRF token for its forms and the nav state."""
    settings = services_of(request).settings
    token, nonce = csrf_token_for(request, settings)
    merged = {"c": strings_for(language), "csrf": token, "csrf_field": CSRF_FIELD, "role": role, "section": section}
    response = render(request, name, {**merged, **context}, language=language, status_code=status_code, headers=headers)
    set_csrf_cookie(response, nonce, settings)
    return response


def csrf_refused(request: Request, language: str) -> Response:
    return page(request, "console/csrf.html", {}, language=language, status_code=403)


def to_login() -> Response:
    return RedirectResponse(LOGIN_PATH, status_code=302)


def see_other(path: str) -> Response:
    # after a POST: the browser GETs the page that shows the result (no resubmission on reload)
    return RedirectResponse(path, status_code=303)


Handler = Callable[[Console], Awaitable[Response]]


def console_route(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A console endpoint: 302 to the login form without a valid session; a POST's form is read and
    its CSRF token checked first (403 page without a valid one), before the handler sees anything."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        services = services_of(request)
        role = session_role(request, services.settings)
        if role is None:
            return to_login()
        language = language_of(request)
        form: FormData | None = None
        if request.method == "POST":
            # a form no page of ours posts (too many fields or files) is refused as one without a token
            form = await read_form(request, max_files=1, max_fields=FORM_MAX_FIELDS)
            token = form.get(CSRF_FIELD) if form is not None else None
            if form is None or not csrf_valid(request, services.settings, token if isinstance(token, str) else None):
                return csrf_refused(request, language)
        return await handler(Console(request, role, language, form))

    return endpoint


# -- small conversions the forms need ------------------------------------------------------------


def utc_text(value: str | None) -> str:
    """A stored RFC 3339 UTC time as a datetime-local input's value (minutes, UTC)."""
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return ""
    return moment.strftime("%Y-%m-%dT%H:%M")


def form_instant(value: str) -> str | None:
    """A datetime-local value (UTC, as the form says) as the API's RFC 3339 text; empty: None.
    Anything else is passed on as typed, so the API's own check names the problem."""
    if not value:
        return None
    if len(value) == 16:  # YYYY-MM-DDTHH:MM
        return value + ":00Z"
    if len(value) == 19:  # with seconds
        return value + "Z"
    return value


def form_int(value: str) -> int | str | None:
    """A number field: empty is None; digits an int; anything else passed on for the API to refuse."""
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        return value


def form_float(value: str) -> float | str | None:
    if not value:
        return None
    try:
        return float(value.replace(",", "."))
    except ValueError:
        return value


def day_of(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def time_of(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")
