"""Public pass images of each program (`GET /assets/{program}/{name}.png`), for Google Wallet.

Google fetches a LoyaltyClass's `programLogo` (and `heroImage`) from a public URL (facts:
../shared/facts/google-wallet.md §1.3), so the images of the program's template, the same files the
Apple pass carries, are served here. Only the template's own PNG images are served, from the copies
read at load (passes/programs.py): the name is looked up among them, never joined to a path, so
nothing else of the template folder (program.json, pass.strings) or of the disk can be reached,
and there is no directory listing.

`program_logo_url` / `program_hero_url` are pure: whoever builds the classes (service/google.py)
passes their result as `logo_url` / `hero_url` to passes/google/model.py.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from passes.programs import Program, image_file_name
from web.errors import ApiError

PNG_TYPE: Final = "image/png"
# The largest scale of each image (templates must have @1x, @2x and @3x): Google scales down itself.
LOGO_NAME: Final = image_file_name("logo", 3)[: -len(".png")]
HERO_NAME: Final = image_file_name("strip", 3)[: -len(".png")]
# A month: the URL does not change when the template's image does (a deploy), so not "immutable";
# the ETag lets a cache revalidate cheaply after that.
CACHE_CONTROL: Final = "public, max-age=2592000"


def asset_url(public_url: str, program: Program | str, name: str) -> str:
    """The absolute URL of image `name` (without `.png`) of `program` under WALLET_PUBLIC_URL."""
    key = program.program if isinstance(program, Program) else program
    base = public_url.rstrip("/")
    return f"{base}/assets/{quote(key, safe='')}/{quote(name, safe='@')}.png"


def program_logo_url(public_url: str, program: Program | str) -> str:
    """The program's logo (`logo@3x.png`), for the LoyaltyClass's `programLogo` (`logo_url`)."""
    return asset_url(public_url, program, LOGO_NAME)


def program_hero_url(public_url: str, program: Program | str) -> str:
    """The program's strip image (`strip@3x.png`), for the LoyaltyClass's `heroImage` (`hero_url`)."""
    return asset_url(public_url, program, HERO_NAME)


def asset_names(program: Program) -> tuple[str, ...]:
    """The names the route serves for `program`: its template's PNG images, without `.png`."""
    return tuple(f.name[: -len(".png")] for f in program.images if "/" not in f.name)


async def program_asset(request: Request) -> Response:
    programs = request.app.state.services.programs
    program = programs.get(request.path_params["program"])
    if program is None:
        raise ApiError(404, "unknown_program", "no such program")
    name = request.path_params["name"]
    found = program.file(name + ".png") if name in asset_names(program) else None
    if found is None:
        # the code is the closest ERROR_CODES (web/routing.py) has for "no such image"
        raise ApiError(404, "unknown_asset", "the program has no such image")
    etag = f'"{found.sha1}"'
    headers = {"Cache-Control": CACHE_CONTROL, "ETag": etag}
    if etag in (tag.strip() for tag in request.headers.get("if-none-match", "").split(",")):
        return Response(status_code=304, headers=headers)
    return Response(found.data, media_type=PNG_TYPE, headers=headers)
