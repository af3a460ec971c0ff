"""Where a program's pass images are published (`/assets/{program}/{name}.png`, served by
web/assets.py): pure URL builders, for the Google Wallet classes' `programLogo` and `heroImage`."""

from __future__ import annotations

from typing import Final
from urllib.parse import quote

from passes.programs import Program, image_file_name

# The largest scale of each image (templates must have @1x, @2x and @3x): Google scales down itself.
LOGO_NAME: Final = image_file_name("logo", 3)[: -len(".png")]
HERO_NAME: Final = image_file_name("strip", 3)[: -len(".png")]


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
