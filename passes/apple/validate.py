"""A pure validator of pass.json and whole .pkpass files against Apple's rules.

Apple ships no validator that runs on Linux, so this encodes the rules from the
PassKit package format and Apple's "Common Problems" list (see the research notes):
required keys, one style key, field limits, unique keys, changeMessage with %@, at
most 10 locations, token length, barcode shape, colors, manifest completeness and
localization consistency. Functions return a list of human-readable problems; an
empty list means valid. No I/O: callers pass bytes or parsed JSON.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from collections.abc import Mapping
from typing import Any, TypeGuard

from passes.apple.pass_json import MAX_LOCATIONS
from passes.apple.strings import StringsError, is_utf16_with_bom, parse_strings
from passes.programs import BARCODE_FORMATS, COLOR_RE

STYLE_KEYS = ("boardingPass", "coupon", "eventTicket", "generic", "storeCard")
FIELD_GROUPS = ("headerFields", "primaryFields", "secondaryFields", "auxiliaryFields", "backFields")
GROUP_LIMITS = {"headerFields": 3, "primaryFields": 1, "secondaryFields": 4, "auxiliaryFields": 4}
SQUARE_BARCODES = {"PKBarcodeFormatQR", "PKBarcodeFormatAztec"}
NUMBER_STYLES = {"PKNumberStyleDecimal", "PKNumberStylePercent", "PKNumberStyleScientific", "PKNumberStyleSpellOut"}
DATE_STYLES = {"PKDateStyleNone", "PKDateStyleShort", "PKDateStyleMedium", "PKDateStyleLong", "PKDateStyleFull"}
MIN_TOKEN_LENGTH = 16
REQUIRED_FILES = ("pass.json", "manifest.json", "signature", "icon.png")
UNSIGNED_FILES = ("manifest.json", "signature")
# Our convention for localization keys ("label.balance", "tier.gold"): such strings must resolve.
LOCALIZATION_KEY = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")

_ISO_WITH_ZONE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$")
_JUNK = re.compile(r"(^|/)(\.DS_Store|__MACOSX|Thumbs\.db)(/|$)")

Strings = Mapping[str, Mapping[str, str]]


def _is_number(v: Any) -> TypeGuard[int | float]:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _nonempty_str(v: Any) -> TypeGuard[str]:
    return isinstance(v, str) and v != ""


def _check_color(name: str, value: Any, problems: list[str]) -> None:
    m = COLOR_RE.fullmatch(value) if isinstance(value, str) else None
    if not m or any(int(g) > 255 for g in m.groups()):
        problems.append(f"{name} must be a CSS rgb() color like rgb(23, 187, 82), got {value!r}")


def _check_change_message(where: str, message: Any, strings: Strings | None, problems: list[str]) -> None:
    if not isinstance(message, str):
        problems.append(f"{where}.changeMessage must be a string")
        return
    if strings and any(message in table for table in strings.values()):
        for locale, table in strings.items():
            text = table.get(message)
            if text is None:
                problems.append(f"{where}.changeMessage {message!r} is missing from {locale}.lproj/pass.strings")
            elif "%@" not in text:
                problems.append(f"{where}.changeMessage {message!r} in {locale}.lproj lacks %@")
    elif "%@" not in message:
        problems.append(f"{where}.changeMessage must contain %@ (the field's new value), got {message!r}")


def _check_field(group: str, i: int, fld: Any, strings: Strings | None, problems: list[str]) -> str | None:
    where = f"{group}[{i}]"
    if not isinstance(fld, dict):
        problems.append(f"{where} must be an object")
        return None
    key = fld.get("key")
    if not _nonempty_str(key):
        problems.append(f"{where} needs a non-empty string key")
        key = None
    else:
        where = f"{group}[{key}]"
    value = fld.get("value")
    if "value" not in fld or not (isinstance(value, str) or _is_number(value)):
        problems.append(f"{where} needs a value (string or number)")
    if "label" in fld and not isinstance(fld["label"], str):
        problems.append(f"{where}.label must be a string")
    if "changeMessage" in fld:
        _check_change_message(where, fld["changeMessage"], strings, problems)
    if "textAlignment" in fld and group in ("primaryFields", "backFields"):
        problems.append(f"{where}: textAlignment is not allowed in {group}")
    if "dataDetectorTypes" in fld and group != "backFields":
        problems.append(f"{where}: dataDetectorTypes is only allowed in backFields")
    if ("numberStyle" in fld or "currencyCode" in fld) and not _is_number(value):
        problems.append(f"{where}: numberStyle/currencyCode need a numeric value")
    if "numberStyle" in fld and fld["numberStyle"] not in NUMBER_STYLES:
        problems.append(f"{where}: unknown numberStyle {fld['numberStyle']!r}")
    if "dateStyle" in fld or "timeStyle" in fld:
        for style in ("dateStyle", "timeStyle"):
            if style in fld and fld[style] not in DATE_STYLES:
                problems.append(f"{where}: unknown {style} {fld[style]!r}")
        if not isinstance(value, str) or not _ISO_WITH_ZONE.match(value):
            problems.append(f"{where}: a date value must be ISO 8601 with a time zone, got {value!r}")
    return key


def _check_fields(
    style: str, body: Any, strings: Strings | None, barcode_formats: set[str], problems: list[str]
) -> None:
    if not isinstance(body, dict):
        problems.append(f"{style} must be an object")
        return
    counts: dict[str, int] = {}
    keys: list[str] = []
    for group in FIELD_GROUPS:
        if group not in body:
            continue
        fields = body[group]
        if not isinstance(fields, list):
            problems.append(f"{style}.{group} must be a list")
            continue
        counts[group] = len(fields)
        limit = GROUP_LIMITS.get(group)
        if limit is not None and len(fields) > limit:
            problems.append(f"{style}.{group} has {len(fields)} fields; at most {limit} allowed")
        for i, fld in enumerate(fields):
            key = _check_field(group, i, fld, strings, problems)
            if key is not None:
                keys.append(key)
    combined = counts.get("secondaryFields", 0) + counts.get("auxiliaryFields", 0)
    square = bool(barcode_formats & SQUARE_BARCODES)
    if (style in ("storeCard", "coupon") or (style == "generic" and square)) and combined > 4:
        problems.append(f"{style} has {combined} secondary + auxiliary fields; at most 4 combined allowed")
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            problems.append(f"field key {key!r} is used more than once (keys must be unique in the pass)")
        seen.add(key)


def _check_barcode(where: str, bc: Any, problems: list[str]) -> str | None:
    if not isinstance(bc, dict):
        problems.append(f"{where} must be an object")
        return None
    fmt = bc.get("format")
    if fmt not in BARCODE_FORMATS:
        problems.append(f"{where}.format must be one of {sorted(BARCODE_FORMATS)}, got {fmt!r}")
    if not _nonempty_str(bc.get("message")):
        problems.append(f"{where}.message must be a non-empty string")
    encoding = bc.get("messageEncoding")
    if not _nonempty_str(encoding):
        problems.append(f"{where}.messageEncoding is required (e.g. iso-8859-1)")
    elif encoding.lower() in ("iso-8859-1", "latin-1", "latin1") and isinstance(bc.get("message"), str):
        try:
            bc["message"].encode("iso-8859-1")
        except UnicodeEncodeError:
            problems.append(f"{where}.message cannot be encoded as {encoding}")
    if "altText" in bc and not isinstance(bc["altText"], str):
        problems.append(f"{where}.altText must be a string")
    return fmt if isinstance(fmt, str) else None


def validate_pass_json(
    pass_json: Any,
    *,
    strings: Strings | None = None,
    require_https: bool = False,
) -> list[str]:
    """Problems of a parsed pass.json; `strings` (locale -> table) resolves localized changeMessages.

    `require_https`: Apple requires HTTPS web services except on devices set up for
    development; production callers pass True.
    """
    problems: list[str] = []
    if not isinstance(pass_json, dict):
        return ["pass.json must be a JSON object"]
    p = pass_json
    for key in ("description", "organizationName", "passTypeIdentifier", "serialNumber", "teamIdentifier"):
        if not _nonempty_str(p.get(key)):
            problems.append(f"required key {key!r} is missing or empty")
    if p.get("formatVersion") != 1 or isinstance(p.get("formatVersion"), bool):
        problems.append(f"formatVersion must be 1, got {p.get('formatVersion')!r}")

    styles = [s for s in STYLE_KEYS if s in p]
    if len(styles) != 1:
        problems.append(f"exactly one style key ({', '.join(STYLE_KEYS)}) is required, found {styles or 'none'}")

    barcode_formats: set[str] = set()
    if "barcodes" in p:
        if not isinstance(p["barcodes"], list) or not p["barcodes"]:
            problems.append("barcodes must be a non-empty list")
        else:
            for i, bc in enumerate(p["barcodes"]):
                fmt = _check_barcode(f"barcodes[{i}]", bc, problems)
                if fmt:
                    barcode_formats.add(fmt)
    if "barcode" in p:
        fmt = _check_barcode("barcode", p["barcode"], problems)
        if fmt:
            barcode_formats.add(fmt)
    for style in styles:
        _check_fields(style, p[style], strings, barcode_formats, problems)

    for key in ("backgroundColor", "foregroundColor", "labelColor"):
        if key in p:
            _check_color(key, p[key], problems)

    token, url = p.get("authenticationToken"), p.get("webServiceURL")
    if url is not None or token is not None:
        if not isinstance(url, str) or not re.match(r"^https?://[^/\s]+", url):
            problems.append(f"webServiceURL must be an http(s) URL when authenticationToken is set, got {url!r}")
        elif require_https and not url.startswith("https://"):
            problems.append("webServiceURL must use https:// (HTTP only works on development devices)")
        if not isinstance(token, str) or len(token) < MIN_TOKEN_LENGTH:
            problems.append(f"authenticationToken must be a string of at least {MIN_TOKEN_LENGTH} characters")

    if "locations" in p:
        locs = p["locations"]
        if not isinstance(locs, list):
            problems.append("locations must be a list")
        else:
            if len(locs) > MAX_LOCATIONS:
                problems.append(f"locations has {len(locs)} entries; Apple allows at most {MAX_LOCATIONS}")
            for i, loc in enumerate(locs):
                if not isinstance(loc, dict):
                    problems.append(f"locations[{i}] must be an object")
                    continue
                lat, lon = loc.get("latitude"), loc.get("longitude")
                if not _is_number(lat) or not -90 <= lat <= 90:
                    problems.append(f"locations[{i}].latitude must be a number in [-90, 90], got {lat!r}")
                if not _is_number(lon) or not -180 <= lon <= 180:
                    problems.append(f"locations[{i}].longitude must be a number in [-180, 180], got {lon!r}")
                if "relevantText" in loc and not isinstance(loc["relevantText"], str):
                    problems.append(f"locations[{i}].relevantText must be a string")
    if "maxDistance" in p and (not _is_number(p["maxDistance"]) or p["maxDistance"] <= 0):
        problems.append("maxDistance must be a positive number")
    for key in ("sharingProhibited", "voided", "suppressStripShine"):
        if key in p and not isinstance(p[key], bool):
            problems.append(f"{key} must be true or false")
    if "expirationDate" in p and not (
        isinstance(p["expirationDate"], str) and _ISO_WITH_ZONE.match(p["expirationDate"])
    ):
        problems.append("expirationDate must be ISO 8601 with a time zone")
    return problems


def _strings_in(pass_json: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(where, text) for top-level texts, labels and changeMessages.

    Field values are localized by Wallet too, but they also carry member data (a name
    like "j.doe" would look like a key), so values are left to the template's own tests.
    """
    out = [
        (k, pass_json[k]) for k in ("description", "organizationName", "logoText") if isinstance(pass_json.get(k), str)
    ]
    for style in STYLE_KEYS:
        body = pass_json.get(style)
        if not isinstance(body, dict):
            continue
        for group in FIELD_GROUPS:
            for fld in body.get(group) or []:
                if not isinstance(fld, dict):
                    continue
                for attr in ("label", "changeMessage"):
                    if isinstance(fld.get(attr), str):
                        out.append((f"{group}[{fld.get('key')}].{attr}", fld[attr]))
    return out


def unresolved_keys(pass_json: Mapping[str, Any], strings: Strings) -> list[str]:
    """Problems for strings that look like localization keys but are missing from a locale."""
    problems = []
    for where, text in _strings_in(pass_json):
        if LOCALIZATION_KEY.match(text):
            for locale, table in strings.items():
                if text not in table:
                    problems.append(f"{where} {text!r} is not defined in {locale}.lproj/pass.strings")
    return problems


def validate_pkpass(data: bytes, *, require_https: bool = False) -> list[str]:
    """Problems of a whole .pkpass: zip layout, manifest, localization, then pass.json."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        files = {info.filename: zf.read(info) for info in zf.infolist() if not info.is_dir()}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        return [f"not a readable zip archive: {exc}"]
    return validate_files(files, require_https=require_https)


def validate_files(files: Mapping[str, bytes], *, require_https: bool = False) -> list[str]:
    """Like validate_pkpass, for an unpacked pass: name -> bytes."""
    problems: list[str] = []
    for name in REQUIRED_FILES:
        if name not in files:
            problems.append(f"missing {name}")
    for name in files:
        if _JUNK.search(name):
            problems.append(f"{name} must not be in a pass")

    if "manifest.json" in files:
        try:
            manifest = json.loads(files["manifest.json"])
            if not isinstance(manifest, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            problems.append(f"manifest.json is not a JSON object: {exc}")
            manifest = {}
        for name, content in files.items():
            if name in UNSIGNED_FILES:
                continue
            expected = manifest.get(name)
            if expected is None:
                problems.append(f"{name} is not listed in manifest.json")
            elif expected != hashlib.sha1(content).hexdigest():
                problems.append(f"manifest.json has a wrong SHA-1 for {name}")
        for name in manifest:
            if name not in files:
                problems.append(f"manifest.json lists {name}, which is not in the pass")
            if name in UNSIGNED_FILES:
                problems.append(f"manifest.json must not list {name}")

    strings: dict[str, dict[str, str]] = {}
    for name, content in files.items():
        m = re.match(r"^([^/]+)\.lproj/pass\.strings$", name)
        if not m:
            continue
        if not is_utf16_with_bom(content):
            problems.append(f"{name} should be UTF-16 with a byte order mark")
        try:
            strings[m.group(1)] = parse_strings(content)
        except (StringsError, UnicodeDecodeError) as exc:
            problems.append(f"{name} cannot be parsed: {exc}")
    if strings:
        locales = sorted(strings)
        ref = set(strings[locales[0]])
        for lc in locales[1:]:
            if set(strings[lc]) != ref:
                diff = sorted(set(strings[lc]) ^ ref)
                problems.append(f"{lc}.lproj/pass.strings and {locales[0]}.lproj/pass.strings differ in keys {diff}")

    if "pass.json" in files:
        try:
            pass_json = json.loads(files["pass.json"].decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            problems.append(f"pass.json is not UTF-8 JSON: {exc}")
        else:
            problems.extend(validate_pass_json(pass_json, strings=strings or None, require_https=require_https))
            if strings and isinstance(pass_json, dict):
                problems.extend(unresolved_keys(pass_json, strings))
    return problems
