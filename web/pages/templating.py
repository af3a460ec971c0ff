"""Rendering a page: Jinja2 through Starlette's Jinja2Templates, autoescaped, with the page's language
and the security headers every page carries (security.py)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from web.pages.security import page_headers
from web.pages.strings import STRINGS, Strings

HERE = Path(__file__).resolve().parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
LANGUAGES = ("ru", "en")

# Autoescaping on for every template, whatever its file name: nothing a member or marketing typed
# reaches a page unescaped.
templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True, undefined=jinja2.StrictUndefined
    )
)


def accepted_languages(header: str) -> list[str]:
    """The primary language tags of an Accept-Language header, best first (q-values honoured)."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip().lower().split("-")[0]
        if not tag or tag == "*":
            continue
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                quality = 0.0
        if quality > 0:
            ranked.append((-quality, position, tag))
    return [tag for _, _, tag in sorted(ranked)]


def choose_language(request: Request, offered: Iterable[str], default: str) -> str:
    """The first language of the visitor's Accept-Language that the page offers, else `default`.
    A `lang` query parameter (the page's own language switch) wins."""
    choices = [lang for lang in offered if lang in LANGUAGES] or [default]
    wanted = request.query_params.get("lang")
    if wanted in choices:
        return str(wanted)
    for tag in accepted_languages(request.headers.get("accept-language", "")):
        if tag in choices:
            return tag
    return default if default in choices else choices[0]


def strings_for(language: str) -> Strings:
    return STRINGS.get(language, STRINGS["en"])


def render(
    request: Request,
    name: str,
    context: Mapping[str, Any],
    *,
    language: str,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The template `name` with `context`, the page strings `t` of `language`, and the pages' headers."""
    settings = request.app.state.services.settings
    merged = {"lang": language, "t": strings_for(language), **context}
    response = templates.TemplateResponse(request, name, merged, status_code=status_code)
    response.headers.update(page_headers(settings))
    response.headers["Content-Language"] = language
    if headers:
        response.headers.update(headers)
    return response
