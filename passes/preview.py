"""The front of a program's Apple pass (store card) as a PNG, per tier, for people to look at: the
marketing console's campaign preview and GET /v1/programs/{program}/preview.png. Pure (Pillow).

Drawn from the template as Wallet lays out a store card: the logo and the logo text (program name)
at the top with the balance as the header field, the strip with the tier as the primary field on
it, the member and the points to the next tier as secondary fields, and the barcode. Colours are
the tier's (background, foreground, label). It is an approximation for choosing colours and words,
not a pixel-exact rendering of Wallet (Apple's fonts are not ours to ship: DejaVu Sans, which has
Cyrillic, when the system has it, else Pillow's default font).
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import segno
from PIL import Image, ImageDraw, ImageFont

from passes.programs import COLOR_RE, Program, Tier

SCALE = 2  # pixels per point (a @2x screen)
WIDTH_PT, HEIGHT_PT = 375, 460
SIZE = (WIDTH_PT * SCALE, HEIGHT_PT * SCALE)
STRIP_TOP_PT = 70  # below the logo row
STRIP_PT = (375, 123)  # a store card's strip (passes/programs.py IMAGE_POINTS)
MARGIN_PT = 16
CORNER_PT = 12

_FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))


class PreviewError(ValueError):
    """An unknown tier or locale of the program; the message says which."""


def rgb(color: str) -> tuple[int, int, int]:
    """A template colour "rgb(r, g, b)" as a tuple (the loader has checked its form)."""
    found = COLOR_RE.fullmatch(color)
    if found is None:
        raise ValueError(f"not an rgb() colour: {color!r}")
    r, g, b = (int(part) for part in found.groups())
    return r, g, b


@lru_cache(maxsize=16)
def _font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    for folder in _FONT_DIRS:
        path = folder / name
        if path.is_file():
            return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size)


def _px(points: float) -> int:
    return round(points * SCALE)


def _image(template: Program, name: str) -> Image.Image | None:
    """The template's image at the best scale it has (@2x or more first), as RGBA."""
    for file_name in (f"{name}@3x.png", f"{name}@2x.png", f"{name}.png"):
        found = template.file(file_name)
        if found is not None:
            with Image.open(io.BytesIO(found.data)) as opened:
                return opened.convert("RGBA")
    return None


def _fit(image: Image.Image, box: tuple[int, int]) -> Image.Image:
    scaled = image.copy()
    scaled.thumbnail(box, Image.Resampling.LANCZOS)
    return scaled


def _field(
    draw: ImageDraw.ImageDraw,
    xy: tuple[int, int],
    label: str,
    value: str,
    colors: tuple[tuple[int, int, int], tuple[int, int, int]],
    *,
    value_pt: int = 17,
    anchor_right: bool = False,
) -> None:
    """A Wallet field: the label small in the label colour, the value below it in the foreground."""
    label_color, value_color = colors
    x, y = xy
    label_font, value_font = _font(_px(10)), _font(_px(value_pt))
    if anchor_right:
        draw.text((x, y), label.upper(), font=label_font, fill=label_color, anchor="ra")
        draw.text((x, y + _px(13)), value, font=value_font, fill=value_color, anchor="ra")
    else:
        draw.text((x, y), label.upper(), font=label_font, fill=label_color)
        draw.text((x, y + _px(13)), value, font=value_font, fill=value_color)


def _logo_text(
    draw: ImageDraw.ImageDraw, text: str, xy: tuple[int, int], right: int, color: tuple[int, int, int]
) -> None:
    """The logo text within the room the header field leaves: smaller type first, as Wallet does,
    then cut with an ellipsis."""
    room = max(0, right - xy[0])
    for points in (15, 13, 11):
        font = _font(_px(points), bold=True)
        if draw.textlength(text, font=font) <= room:
            draw.text(xy, text, font=font, fill=color)
            return
    while text and draw.textlength(text + "…", font=font) > room:
        text = text[:-1]
    if text:
        draw.text(xy, text.rstrip() + "…", font=font, fill=color)


def _grouped(number: int, locale: str) -> str:
    # thousands apart as Wallet shows PKNumberStyleDecimal: a thin space in Russian, a comma in English
    text = f"{number:,}"
    return text.replace(",", "\u202f") if locale.startswith("ru") else text


def _barcode(data: str, side: int) -> Image.Image:
    out = io.BytesIO()
    segno.make_qr(data, error="m").save(out, kind="png", scale=8, border=1)
    out.seek(0)
    with Image.open(out) as opened:
        return opened.convert("RGBA").resize((side, side), Image.Resampling.NEAREST)


def pass_front_png(template: Program, tier_key: str, locale: str, *, balance: int = 1250, name: str = "Анна") -> bytes:
    """The pass front of `tier_key` with the words of `locale`, as PNG bytes (SIZE pixels)."""
    tier: Tier | None = template.tier(tier_key)
    if tier is None:
        raise PreviewError(f"not a tier of {template.program}: {', '.join(template.tier_keys)}")
    if locale not in template.locales:
        raise PreviewError(f"not a locale of {template.program}: {', '.join(template.locales)}")
    background, foreground, label = rgb(tier.background_color), rgb(tier.foreground_color), rgb(tier.label_color)
    colors = (label, foreground)
    width, height = SIZE

    canvas = Image.new("RGBA", SIZE, (0, 0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    draw.rounded_rectangle((0, 0, width - 1, height - 1), radius=_px(CORNER_PT), fill=(*background, 255))
    margin = _px(MARGIN_PT)

    # top row: logo, logo text, header field (balance)
    logo = _image(template, "logo")
    text_x = margin
    if logo is not None:
        fitted = _fit(logo, (_px(160), _px(40)))
        canvas.alpha_composite(fitted, (margin, _px(15)))
        text_x = margin + fitted.width + _px(8)
    balance_text = _grouped(balance, locale)
    header_left = width - margin - int(draw.textlength(balance_text, font=_font(_px(20))))
    _logo_text(draw, template.name(locale), (text_x, _px(24)), header_left - _px(10), foreground)
    _field(
        draw,
        (width - margin, _px(14)),
        template.text("label.balance", locale),
        balance_text,
        colors,
        value_pt=20,
        anchor_right=True,
    )

    # the strip, with the primary field (tier) on it
    strip_top = _px(STRIP_TOP_PT)
    strip = _image(template, "strip")
    if strip is not None:
        canvas.alpha_composite(
            strip.resize((_px(STRIP_PT[0]), _px(STRIP_PT[1])), Image.Resampling.LANCZOS), (0, strip_top)
        )
    _field(
        draw, (margin, strip_top + _px(30)), template.text("label.tier", locale), tier.name(locale), colors, value_pt=26
    )

    # secondary fields: the member, the points to the next tier
    below = strip_top + _px(STRIP_PT[1]) + _px(14)
    _field(draw, (margin, below), template.text("label.member", locale), name, colors)
    to_next = tier.points_to_next(balance)
    if to_next is not None:
        _field(
            draw,
            (width - margin, below),
            template.text("label.to_next_tier", locale),
            _grouped(to_next, locale),
            colors,
            anchor_right=True,
        )

    # the barcode on its white plate, as Wallet draws it
    side = _px(120)
    plate = _px(8)
    top = height - side - 2 * plate - _px(20)
    left = (width - side) // 2
    draw.rounded_rectangle(
        (left - plate, top - plate, left + side + plate, top + side + plate), radius=_px(6), fill=(255, 255, 255, 255)
    )
    canvas.alpha_composite(_barcode(f"{template.card_prefix}000000000000", side), (left, top))

    out = io.BytesIO()
    canvas.save(out, format="PNG", optimize=True)
    return out.getvalue()
