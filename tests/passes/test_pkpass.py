"""Signed .pkpass files: openssl verification, manifest, zip layout, cache, a second program."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import zipfile
from pathlib import Path

import pytest

from passes.apple.pass_json import Location
from passes.apple.pkpass import PassFactory, UnknownProgramError
from passes.apple.validate import validate_pkpass
from passes.programs import load_programs
from tests.passes.conftest import PASS_TYPE_ID, PUBLIC_URL, TEAM_ID, TEMPLATES_DIR, unzip, verify_with_openssl


def test_pass_verifies_with_openssl(factory, make_card, pki_dir, tmp_path) -> None:
    rendered = factory.render(make_card(tier="gold", balance=15000), [Location(55.75, 37.62, "Coffee Point nearby")])
    files = unzip(rendered.data)
    verify_with_openssl(files, pki_dir, tmp_path / "v")
    assert validate_pkpass(rendered.data, require_https=True) == []


def test_manifest_covers_exactly_the_files(factory, make_card, coffee) -> None:
    files = unzip(factory.render(make_card()).data)
    manifest = json.loads(files["manifest.json"])
    signed = {n for n in files if n not in ("manifest.json", "signature")}
    assert set(manifest) == signed
    for name in signed:
        assert manifest[name] == hashlib.sha1(files[name]).hexdigest()
    expected = {"pass.json"} | {f.name for f in coffee.files}
    assert signed == expected
    assert {"en.lproj/pass.strings", "ru.lproj/pass.strings", "icon.png", "logo@3x.png", "strip@2x.png"} <= signed


def test_pass_json_in_package(factory, make_card) -> None:
    card = make_card(balance=777)
    files = unzip(factory.render(card).data)
    pj = json.loads(files["pass.json"])
    assert pj == factory.pass_json(card)
    assert pj["webServiceURL"] == PUBLIC_URL + "/passkit"
    assert pj["serialNumber"] == card.serial and pj["authenticationToken"] == card.auth_token


def test_zip_layout_is_deterministic(factory, make_card) -> None:
    data = factory.render(make_card()).data
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = {i.filename: i for i in zf.infolist()}
        names = [i.filename for i in zf.infolist()]
    assert names[-3:] == ["pass.json", "manifest.json", "signature"]
    assert names[:-3] == sorted(names[:-3])
    assert infos["pass.json"].compress_type == zipfile.ZIP_DEFLATED
    assert infos["en.lproj/pass.strings"].compress_type == zipfile.ZIP_DEFLATED
    assert infos["icon.png"].compress_type == zipfile.ZIP_STORED
    assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in infos.values())


def test_cache_serves_unchanged_pass_without_signing(factory, make_card) -> None:
    card = make_card()
    before = factory.signer.signatures
    first = factory.render(card)
    second = factory.render(card)
    assert factory.signer.signatures == before + 1
    assert second.data == first.data and second.digest == first.digest
    assert factory.cache.hits >= 1

    changed = factory.render(card.with_changes(balance=card.balance + 10))
    assert factory.signer.signatures == before + 2
    assert changed.data != first.data and changed.digest != first.digest
    # state that does not show in the pass (e.g. the ledger version) does not cost a signature
    factory.render(card.with_changes(version=card.version + 5, tag=99))
    assert factory.signer.signatures == before + 2


def test_cache_is_bounded(templates, signer, make_card) -> None:
    small = PassFactory(
        templates, signer, pass_type_id=PASS_TYPE_ID, team_id=TEAM_ID, public_url=PUBLIC_URL, cache_entries=3
    )
    card = make_card()
    for b in range(6):
        small.render(card.with_changes(balance=b))
    assert len(small.cache) == 3
    entry = small.cache.bytes / 3
    full = len(small.render(card.with_changes(balance=5)).data)
    assert entry < full / 2  # template files are shared, not cached per pass
    by_bytes = PassFactory(
        templates,
        signer,
        pass_type_id=PASS_TYPE_ID,
        team_id=TEAM_ID,
        public_url=PUBLIC_URL,
        cache_bytes=int(entry * 2.5),
    )
    for b in range(5):
        by_bytes.render(card.with_changes(balance=b))
    assert len(by_bytes.cache) == 2 and by_bytes.cache.bytes <= entry * 2.5
    off = PassFactory(
        templates, signer, pass_type_id=PASS_TYPE_ID, team_id=TEAM_ID, public_url=PUBLIC_URL, cache_entries=0
    )
    before = signer.signatures
    off.render(card)
    off.render(card)
    assert signer.signatures == before + 2


def test_unknown_program(factory, make_card) -> None:
    with pytest.raises(UnknownProgramError, match="tea"):
        factory.render(make_card(program="tea"))


def test_second_program_from_a_copied_folder(tmp_path: Path, signer, pki_dir, make_card) -> None:
    root = tmp_path / "templates"
    shutil.copytree(TEMPLATES_DIR / "coffee", root / "coffee")
    shutil.copytree(TEMPLATES_DIR / "coffee", root / "tea")
    spec = json.loads((root / "tea" / "program.json").read_text())
    spec.update(program="tea", card_prefix="5512")
    spec["tiers"][1]["accrual_percent"] = 12
    (root / "tea" / "program.json").write_text(json.dumps(spec))

    templates = load_programs(root)
    tea = templates["tea"]
    gold = tea.tier("gold")
    assert tea.card_prefix == "5512" and gold is not None and gold.accrual_percent == 12
    factory = PassFactory(templates, signer, pass_type_id=PASS_TYPE_ID, team_id=TEAM_ID, public_url=PUBLIC_URL)

    from cards.numbers import luhn_valid, new_card_number

    number = new_card_number(tea.card_prefix)
    assert number.startswith("5512") and luhn_valid(number)
    rendered = factory.render(make_card(program="tea", number=number, tier="gold", balance=11000))
    files = unzip(rendered.data)
    pj = json.loads(files["pass.json"])
    assert pj["barcodes"][0]["message"] == number
    accrual = next(f for f in pj["storeCard"]["backFields"] if f["key"] == "accrual")
    assert accrual["value"] == 0.12
    verify_with_openssl(files, pki_dir, tmp_path / "v")
    assert validate_pkpass(rendered.data) == []
    # same content in two programs: different cache entries (the template is part of the key)
    card = make_card()
    assert factory.render(card).digest != factory.render(card.with_changes(program="tea")).digest


def test_deflate_variants_round_trip() -> None:
    import zlib

    from passes.apple.pkpass import _deflate, _deflate_zlib

    data = json.dumps({"k": ["value"] * 200}).encode()
    for fn in (_deflate, _deflate_zlib):
        packed = fn(data)
        assert len(packed) < len(data) / 3
        assert zlib.decompress(packed, -15) == data


def test_cached_answers_only_from_the_cache(factory, make_card) -> None:
    """`cached` never signs: None before the first render, the same bytes after it."""
    card = make_card(balance=4321)
    before = factory.signer.signatures
    assert factory.cached(card) is None
    rendered = factory.render(card)
    again = factory.cached(card)
    assert again is not None and again.data == rendered.data
    assert factory.cached(card.with_changes(balance=4322)) is None
    assert factory.signer.signatures == before + 1
