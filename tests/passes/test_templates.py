"""Program templates: the shipped coffee program, strings files, images, and malformed folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from passes.apple.strings import format_strings, is_utf16_with_bom, parse_strings
from passes.png import png_size
from passes.programs import (
    IMAGE_POINTS,
    IMAGE_SCALES,
    REQUIRED_STRING_KEYS,
    ProgramError,
    image_file_name,
    load_programs,
    load_template,
)
from tests.passes.conftest import TEMPLATES_DIR

COFFEE = TEMPLATES_DIR / "coffee"


def test_coffee_program(coffee) -> None:
    assert coffee.program == "coffee"
    assert coffee.card_prefix.isdigit()
    assert set(coffee.locales) == {"ru", "en"}
    assert coffee.tier_keys == ("base", "gold", "platinum")
    assert coffee.default_tier.key == "base"
    base, gold, plat = coffee.tiers
    assert (base.threshold, base.next_threshold, base.accrual_percent) == (0, 10001, 5)
    assert (gold.threshold, gold.next_threshold, gold.accrual_percent) == (10001, 30001, 10)
    assert (plat.threshold, plat.next_threshold, plat.accrual_percent) == (30001, None, 15)
    assert coffee.tier("gold") is gold and coffee.tier("nope") is None
    assert [coffee.tier_for_balance(b).key for b in (0, 10000, 10001, 30000, 30001, 10**9)] == [
        "base",
        "base",
        "gold",
        "gold",
        "platinum",
        "platinum",
    ]
    assert base.points_to_next(1250) == 8751 and plat.points_to_next(50000) is None
    assert len({t.background_color for t in coffee.tiers}) == 3
    assert gold.names["ru"] == "Золотой" and gold.names["en"] == "Gold"


def test_summary_is_public_json(coffee) -> None:
    for locale in ("ru", "en", "de"):
        summary = coffee.summary(locale)
        text = json.dumps(summary, ensure_ascii=False)
        assert coffee.card_prefix not in text  # internal detail
        assert summary["program"] == "coffee"
        assert [t["accrual_percent"] for t in summary["tiers"]] == [5, 10, 15]
        assert [t["threshold"] for t in summary["tiers"]] == [0, 10001, 30001]
    assert coffee.summary("en")["tiers"][1]["name"] == "Gold"
    assert coffee.summary("de")["locale"] == coffee.default_locale


def test_strings_files_are_utf16_with_same_keys(coffee) -> None:
    tables = {}
    for locale in coffee.locales:
        data = (COFFEE / f"{locale}.lproj" / "pass.strings").read_bytes()
        assert data[:2] in (b"\xff\xfe", b"\xfe\xff")
        assert is_utf16_with_bom(data)
        tables[locale] = parse_strings(data)
    keys = {frozenset(t) for t in tables.values()}
    assert len(keys) == 1
    assert set(REQUIRED_STRING_KEYS) <= set(tables["en"])
    assert all("%@" in t[k] for t in tables.values() for k in ("change.balance", "change.tier"))


def test_strings_round_trip_and_syntax() -> None:
    entries = {"a.b": 'quote " and \\ backslash', "ru": "Привет\nмир", "empty": ""}
    assert parse_strings(format_strings(entries)) == entries
    text = '/* comment */\n"k" = "v"; // trailing\n"k2"="v2";'
    assert parse_strings(text.encode("utf-16")) == {"k": "v", "k2": "v2"}
    for bad in ('"k" = "v"', '"k" "v";', '"k" = "v"; "k" = "w";', "k = v;"):
        with pytest.raises(ValueError):
            parse_strings(bad)


def test_images_match_point_sizes(coffee) -> None:
    for image, (w, h) in IMAGE_POINTS.items():
        for scale in IMAGE_SCALES:
            f = coffee.file(image_file_name(image, scale))
            assert f is not None
            assert png_size(f.data) == (w * scale, h * scale)
    assert len(coffee.images) == 9
    assert all(len(f.sha1) == 40 for f in coffee.files)


# --- malformed templates ---------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    dest = tmp_path / "prog"
    shutil.copytree(COFFEE, dest)
    return dest


def edit_program(folder: Path, change) -> None:
    spec = json.loads((folder / "program.json").read_text())
    change(spec)
    (folder / "program.json").write_text(json.dumps(spec))


def edit_strings(folder: Path, locale: str, change) -> None:
    path = folder / f"{locale}.lproj" / "pass.strings"
    table = parse_strings(path.read_bytes())
    change(table)
    path.write_bytes(format_strings(table))


def test_copy_loads(folder: Path) -> None:
    assert load_template(folder).program == "coffee"


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s: s.pop("program"), '"program"'),
        (lambda s: s.update(card_prefix="77x"), "card_prefix"),
        (lambda s: s.update(card_prefix="123456789"), "card_prefix"),
        (lambda s: s.update(locales=["ru"]), ".lproj folders"),
        (lambda s: s.update(default_locale="de"), "default_locale"),
        (lambda s: s.update(tiers=[]), "tiers"),
        (lambda s: s["tiers"][1].update(threshold=0), "strictly increase"),
        (lambda s: s["tiers"][0].update(threshold=5), "threshold 0"),
        (lambda s: s["tiers"][1].update(key="base"), "unique"),
        (lambda s: s["tiers"][1]["colors"].update(background="#ff0000"), "rgb"),
        (lambda s: s["tiers"][1]["colors"].update(label="rgb(300, 0, 0)"), "rgb"),
        (lambda s: s["tiers"][1].update(accrual_percent="10"), "accrual_percent"),
        (lambda s: s.update(barcode_format="PKBarcodeFormatFancy"), "barcode_format"),
    ],
)
def test_bad_program_file(folder: Path, change, message: str) -> None:
    edit_program(folder, change)
    with pytest.raises(ProgramError, match=message) as exc:
        load_template(folder)
    assert str(folder) in str(exc.value)


def test_bad_json(folder: Path) -> None:
    (folder / "program.json").write_text("{not json")
    with pytest.raises(ProgramError, match="not valid JSON"):
        load_template(folder)


def test_missing_image(folder: Path) -> None:
    (folder / "strip@3x.png").unlink()
    with pytest.raises(ProgramError, match="missing image strip@3x.png"):
        load_template(folder)


def test_image_not_png_or_too_large(folder: Path) -> None:
    (folder / "icon.png").write_bytes(b"GIF89a....")
    with pytest.raises(ProgramError, match="not a PNG"):
        load_template(folder)
    shutil.copy(folder / "icon@2x.png", folder / "icon.png")
    with pytest.raises(ProgramError, match="larger than the allotted"):
        load_template(folder)


def test_missing_string_key(folder: Path) -> None:
    edit_strings(folder, "en", lambda t: t.pop("label.balance"))
    with pytest.raises(ProgramError, match="label.balance"):
        load_template(folder)


def test_missing_tier_name(folder: Path) -> None:
    edit_strings(folder, "ru", lambda t: t.pop("tier.gold"))
    with pytest.raises(ProgramError, match="tier.gold"):
        load_template(folder)


def test_locales_with_different_keys(folder: Path) -> None:
    edit_strings(folder, "en", lambda t: t.update({"extra.key": "x"}))
    with pytest.raises(ProgramError, match="differ in keys"):
        load_template(folder)


def test_change_message_without_placeholder(folder: Path) -> None:
    edit_strings(folder, "en", lambda t: t.update({"change.balance": "Balance changed"}))
    with pytest.raises(ProgramError, match="%@"):
        load_template(folder)


def test_strings_must_be_utf16(folder: Path) -> None:
    path = folder / "ru.lproj" / "pass.strings"
    path.write_bytes(path.read_bytes().decode("utf-16").encode("utf-8"))
    with pytest.raises(ProgramError, match="UTF-16"):
        load_template(folder)


def test_load_templates_finds_every_program(tmp_path: Path) -> None:
    shutil.copytree(COFFEE, tmp_path / "coffee")
    shutil.copytree(COFFEE, tmp_path / "tea")
    (tmp_path / "not-a-program").mkdir()
    with pytest.raises(ProgramError, match="already defined"):
        load_programs(tmp_path)
    edit_program(tmp_path / "tea", lambda s: s.update(program="tea"))
    with pytest.raises(ProgramError, match="overlaps"):
        load_programs(tmp_path)
    edit_program(tmp_path / "tea", lambda s: s.update(card_prefix="5511"))
    loaded = load_programs(tmp_path)
    assert sorted(loaded) == ["coffee", "tea"]
    assert loaded["tea"].fingerprint != loaded["coffee"].fingerprint


def test_missing_root() -> None:
    with pytest.raises(ProgramError, match="does not exist"):
        load_programs(Path("/nonexistent/templates"))
