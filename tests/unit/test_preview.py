"""The pass front preview (passes/preview.py): a PNG of the expected size in each tier's colours."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from passes.preview import SIZE, PreviewError, pass_front_png, rgb
from passes.programs import Program, load_programs
from tests.web.conftest import ROOT

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# below the secondary fields, beside the barcode: only the pass's background there
SAMPLE = (40, SIZE[1] - 60)


@pytest.fixture(scope="module")
def coffee() -> Program:
    return load_programs(ROOT / "pass_templates")["coffee"]


def opened(data: bytes) -> Image.Image:
    assert data.startswith(PNG_SIGNATURE)
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.mark.parametrize("locale", ["ru", "en"])
def test_each_tier_is_a_png_of_the_pass_size_in_its_background(coffee: Program, locale: str) -> None:
    for tier in coffee.tiers:
        image = opened(pass_front_png(coffee, tier.key, locale))
        assert image.format == "PNG" and image.size == SIZE
        assert image.convert("RGB").getpixel(SAMPLE) == rgb(tier.background_color)


def test_tiers_differ(coffee: Program) -> None:
    images = {pass_front_png(coffee, tier.key, "ru") for tier in coffee.tiers}
    assert len(images) == len(coffee.tiers)
    # and the words follow the locale and the sample figures
    assert pass_front_png(coffee, "gold", "ru") != pass_front_png(coffee, "gold", "en")
    assert pass_front_png(coffee, "gold", "ru") != pass_front_png(coffee, "gold", "ru", balance=99, name="Ivan")


def test_corners_are_transparent_like_a_pass(coffee: Program) -> None:
    image = opened(pass_front_png(coffee, "base", "ru")).convert("RGBA")
    corner = image.getpixel((0, 0))
    assert isinstance(corner, tuple) and corner[3] == 0


def test_unknown_tier_or_locale(coffee: Program) -> None:
    with pytest.raises(PreviewError, match="not a tier"):
        pass_front_png(coffee, "diamond", "ru")
    with pytest.raises(PreviewError, match="not a locale"):
        pass_front_png(coffee, "base", "de")


def test_rgb() -> None:
    assert rgb("rgb(1, 2, 3)") == (1, 2, 3)
    with pytest.raises(ValueError):
        rgb("#fff")
