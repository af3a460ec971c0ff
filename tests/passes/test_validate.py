"""The validator itself: a good pass passes, and every rule fails on a bad example."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import zipfile

import pytest

from passes.apple.pass_json import Location
from passes.apple.strings import format_strings
from passes.apple.validate import validate_files, validate_pass_json, validate_pkpass
from tests.passes.conftest import unzip


@pytest.fixture
def good(factory, make_card) -> dict:
    return factory.pass_json(make_card(), [Location(55.7, 37.6, "nearby")])


def sc(p):
    return p["storeCard"]


def field(p, key):
    return next(f for fs in sc(p).values() for f in fs if f["key"] == key)


MUTATIONS = [
    ("missing description", lambda p: p.pop("description"), "'description'"),
    ("missing organizationName", lambda p: p.pop("organizationName"), "'organizationName'"),
    ("missing passTypeIdentifier", lambda p: p.pop("passTypeIdentifier"), "'passTypeIdentifier'"),
    ("missing serialNumber", lambda p: p.update(serialNumber=""), "'serialNumber'"),
    ("missing teamIdentifier", lambda p: p.pop("teamIdentifier"), "'teamIdentifier'"),
    ("formatVersion 2", lambda p: p.update(formatVersion=2), "formatVersion"),
    ("formatVersion string", lambda p: p.update(formatVersion="1"), "formatVersion"),
    ("no style", lambda p: p.pop("storeCard"), "style key"),
    ("two styles", lambda p: p.update(generic={}), "style key"),
    (
        "4 header fields",
        lambda p: sc(p)["headerFields"].extend([{"key": f"h{i}", "value": i} for i in range(2)]),
        "headerFields has 4",
    ),
    ("2 primary fields", lambda p: sc(p)["primaryFields"].append({"key": "p2", "value": "x"}), "primaryFields has 2"),
    (
        "5 secondary+auxiliary",
        lambda p: sc(p)["auxiliaryFields"].append({"key": "a3", "value": "x"}),
        "at most 4 combined",
    ),
    (
        "5 secondary",
        lambda p: sc(p).update(secondaryFields=[{"key": f"s{i}", "value": 1} for i in range(5)]),
        "secondaryFields has 5",
    ),
    ("duplicate key", lambda p: sc(p)["backFields"].append({"key": "balance", "value": 1}), "more than once"),
    ("field without key", lambda p: sc(p)["backFields"].append({"value": 1}), "non-empty string key"),
    ("field without value", lambda p: sc(p)["backFields"].append({"key": "nv"}), "needs a value"),
    ("field value object", lambda p: sc(p)["backFields"].append({"key": "nv", "value": {"a": 1}}), "needs a value"),
    ("changeMessage without %@", lambda p: field(p, "last_operation").update(changeMessage="Changed"), "%@"),
    (
        "changeMessage key missing %@ text",
        lambda p: field(p, "balance").update(changeMessage="label.balance"),
        "lacks %@",
    ),
    (
        "textAlignment on primary",
        lambda p: field(p, "tier").update(textAlignment="PKTextAlignmentLeft"),
        "textAlignment",
    ),
    ("dataDetectorTypes on front", lambda p: field(p, "balance").update(dataDetectorTypes=[]), "dataDetectorTypes"),
    ("numberStyle on text", lambda p: field(p, "member").update(numberStyle="PKNumberStyleDecimal"), "numeric value"),
    ("unknown numberStyle", lambda p: field(p, "balance").update(numberStyle="Fancy"), "numberStyle"),
    ("date without zone", lambda p: field(p, "expiring_date").update(value="2027-03-31T00:00:00"), "time zone"),
    ("11 locations", lambda p: p.update(locations=[{"latitude": 1.0, "longitude": 2.0}] * 11), "at most 10"),
    ("bad latitude", lambda p: p.update(locations=[{"latitude": 100.0, "longitude": 2.0}]), "latitude"),
    ("missing longitude", lambda p: p.update(locations=[{"latitude": 1.0}]), "longitude"),
    ("short token", lambda p: p.update(authenticationToken="short"), "at least 16"),
    ("token without URL", lambda p: p.pop("webServiceURL"), "webServiceURL"),
    ("URL without token", lambda p: p.pop("authenticationToken"), "authenticationToken"),
    ("http URL in prod", lambda p: p.update(webServiceURL="http://wallet.example.test/passkit"), "https"),
    ("bad barcode format", lambda p: p["barcodes"][0].update(format="PKBarcodeFormatEAN"), "format"),
    ("barcode without message", lambda p: p["barcodes"][0].pop("message"), "message"),
    ("barcode without encoding", lambda p: p["barcodes"][0].pop("messageEncoding"), "messageEncoding"),
    ("barcode not latin-1", lambda p: p["barcodes"][0].update(message="карта"), "cannot be encoded"),
    ("empty barcodes", lambda p: p.update(barcodes=[]), "barcodes"),
    ("bad color", lambda p: p.update(backgroundColor="#6f4e37"), "backgroundColor"),
    ("color out of range", lambda p: p.update(labelColor="rgb(256, 0, 0)"), "labelColor"),
    ("bad maxDistance", lambda p: p.update(maxDistance=-5), "maxDistance"),
    ("sharingProhibited string", lambda p: p.update(sharingProhibited="yes"), "sharingProhibited"),
]


def test_good_pass_is_valid(good, coffee) -> None:
    assert validate_pass_json(good, strings=coffee.strings, require_https=True) == []


@pytest.mark.parametrize("name, mutate, expected", MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_each_rule_can_fail(good, coffee, name, mutate, expected) -> None:
    bad = copy.deepcopy(good)
    mutate(bad)
    problems = validate_pass_json(bad, strings=coffee.strings, require_https=True)
    assert problems, f"{name} was not detected"
    assert any(expected in p for p in problems), problems


def test_localized_change_messages_need_strings(good) -> None:
    # Without strings, a changeMessage that is a key cannot be shown to contain %@.
    problems = validate_pass_json(good)
    assert any("change.balance" in p for p in problems)


def test_not_an_object() -> None:
    assert validate_pass_json([1, 2]) == ["pass.json must be a JSON object"]


def test_http_allowed_for_development(good, coffee) -> None:
    good["webServiceURL"] = "http://127.0.0.1:8000/passkit"
    assert validate_pass_json(good, strings=coffee.strings) == []


# --- whole packages --------------------------------------------------------------------------


@pytest.fixture
def files(factory, make_card) -> dict[str, bytes]:
    return unzip(factory.render(make_card()).data)


def rehash(files: dict[str, bytes]) -> dict[str, bytes]:
    """Rewrite the manifest for `files` in place; returns `files` so a mutation lambda can end with it."""
    manifest = {n: hashlib.sha1(d).hexdigest() for n, d in files.items() if n not in ("manifest.json", "signature")}
    files["manifest.json"] = json.dumps(manifest).encode()
    return files


def test_good_package(files) -> None:
    assert validate_files(files, require_https=True) == []


PACKAGE_MUTATIONS = [
    ("missing icon", lambda f: (f.pop("icon.png"), rehash(f)), "missing icon.png"),
    ("missing signature", lambda f: f.pop("signature"), "missing signature"),
    ("file not in manifest", lambda f: f.update({"extra.png": b"x"}), "not listed"),
    ("manifest lists absent file", lambda f: f.pop("logo.png"), "not in the pass"),
    ("wrong hash", lambda f: f.update({"pass.json": f["pass.json"] + b" "}), "wrong SHA-1"),
    ("junk file", lambda f: (f.update({".DS_Store": b"x"}), rehash(f)), ".DS_Store"),
    (
        "utf-8 strings",
        lambda f: (
            f.update({"en.lproj/pass.strings": f["en.lproj/pass.strings"].decode("utf-16").encode()}),
            rehash(f),
        ),
        "UTF-16",
    ),
    (
        "different key sets",
        lambda f: (f.update({"en.lproj/pass.strings": format_strings({"a.b": "c"})}), rehash(f)),
        "differ in keys",
    ),
    (
        "key used but undefined",
        lambda f: (f.update({"pass.json": f["pass.json"].replace(b'"label.member"', b'"label.nickname"')}), rehash(f)),
        "label.nickname",
    ),
    ("broken pass.json", lambda f: (f.update({"pass.json": b"{"}), rehash(f)), "not UTF-8 JSON"),
    (
        "manifest lists signature",
        lambda f: f.update(
            {"manifest.json": json.dumps({**json.loads(f["manifest.json"]), "signature": "0" * 40}).encode()}
        ),
        "must not list signature",
    ),
]


@pytest.mark.parametrize("name, mutate, expected", PACKAGE_MUTATIONS, ids=[m[0] for m in PACKAGE_MUTATIONS])
def test_each_package_rule_can_fail(files, name, mutate, expected) -> None:
    mutate(files)
    problems = validate_files(files)
    assert any(expected in p for p in problems), problems


def test_validate_pkpass_reads_zip(factory, make_card) -> None:
    assert validate_pkpass(factory.render(make_card()).data) == []
    assert "not a readable zip" in validate_pkpass(b"PK not really")[0]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("pass.json", "{}")
    assert any("missing manifest.json" in p for p in validate_pkpass(buf.getvalue()))
