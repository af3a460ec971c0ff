"""Generator of the example program's artwork (icon, logo, strip at @1x/@2x/@3x).

Run once: `python -m passes.artwork pass_templates/coffee`. The PNGs are committed; this
only documents how they were made. Shapes are drawn in point coordinates and sampled
per pixel, so every scale is the same picture.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path

from passes.png import encode_rgba
from passes.programs import IMAGE_POINTS, IMAGE_SCALES, image_file_name

RGBA = tuple[int, int, int, int]
Painter = Callable[[float, float], RGBA]

CREAM = (245, 230, 205, 255)
BROWN = (111, 78, 55, 255)
DARK = (62, 39, 25, 255)
CLEAR = (0, 0, 0, 0)


def _in_round_rect(x: float, y: float, x0: float, y0: float, x1: float, y1: float, r: float) -> bool:
    if not (x0 <= x <= x1 and y0 <= y <= y1):
        return False
    cx = min(max(x, x0 + r), x1 - r)
    cy = min(max(y, y0 + r), y1 - r)
    return (x - cx) ** 2 + (y - cy) ** 2 <= r * r


def _cup(x: float, y: float, ox: float, oy: float, s: float) -> bool:
    """A cup with a handle, `s` points tall, top-left at (ox, oy)."""
    u, v = (x - ox) / s, (y - oy) / s
    body = _in_round_rect(u, v, 0.05, 0.25, 0.7, 0.95, 0.12)
    ring = 0.06 <= math.hypot(u - 0.72, v - 0.55) <= 0.17 and u > 0.68
    steam = 0.0 <= v <= 0.2 and any(abs(u - (c + 0.04 * math.sin(v * 18))) < 0.035 for c in (0.22, 0.38, 0.54))
    return body or ring or steam


def icon(x: float, y: float) -> RGBA:
    if not _in_round_rect(x, y, 0, 0, 29, 29, 6):
        return CLEAR
    return CREAM if _cup(x, y, 5.5, 4.5, 20) else BROWN


def logo(x: float, y: float) -> RGBA:
    if _cup(x, y, 4, 6, 38):
        return CREAM
    # three "bean" ovals standing in for a word mark
    for i in range(3):
        cx, cy = 62 + i * 30, 25
        if ((x - cx) / 12) ** 2 + ((y - cy) / 8) ** 2 <= 1 and abs((x - cx) * 0.5 - (y - cy)) > 1.0:
            return CREAM
    return CLEAR


def strip(x: float, y: float) -> RGBA:
    t = y / 123
    r, g, b = (int(DARK[i] + (BROWN[i] - DARK[i]) * t) for i in range(3))
    # a loose grid of tilted coffee beans
    for bx in range(20, 400, 55):
        for by in range(15, 140, 40):
            cx, cy = bx + (by % 3) * 9, by
            dx, dy = x - cx, y - cy
            rx, ry = dx * 0.8 + dy * 0.6, -dx * 0.6 + dy * 0.8
            if (rx / 11) ** 2 + (ry / 7) ** 2 <= 1:
                return (140, 100, 70, 255) if abs(ry + 1.5 * math.sin(rx / 4)) > 1.1 else DARK
    return (r, g, b, 255)


PAINTERS: dict[str, Painter] = {"icon": icon, "logo": logo, "strip": strip}


def render(painter: Painter, width_pt: int, height_pt: int, scale: int) -> bytes:
    rows = []
    for py in range(height_pt * scale):
        row = bytearray()
        for px in range(width_pt * scale):
            row.extend(painter((px + 0.5) / scale, (py + 0.5) / scale))
        rows.append(bytes(row))
    return encode_rgba(width_pt * scale, height_pt * scale, rows)


def main(argv: list[str]) -> int:
    folder = Path(argv[0] if argv else "pass_templates/coffee")
    for image, (w, h) in IMAGE_POINTS.items():
        for scale in IMAGE_SCALES:
            (folder / image_file_name(image, scale)).write_bytes(render(PAINTERS[image], w, h, scale))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
