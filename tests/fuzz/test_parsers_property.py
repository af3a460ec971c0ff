"""Property tests of the parsers that read what callers send: the ledger's signature header and its events,
store imports (CSV, GeoJSON), card imports (CSV), the PassKit path parameters and headers, phone numbers.

Each parser is held to three kinds of property: on any input it answers or refuses with its own documented
error and never raises anything else (a different exception is a 500 in a handler); what it accepts
round-trips (written out again and read back, the same value); what it refuses is refused whatever valid
rows surround it, and refusing changes nothing. Bounded for CI: a fixed number of examples, derandomized."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from datetime import UTC, date
from email.utils import formatdate
from pathlib import Path
from typing import Any

import phonenumbers
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from starlette.requests import Request

from cards.bounds import POINTS_MAX, VERSION_MAX
from cards.numbers import ACCOUNT_PATTERN
from cards.phones import MAX_INPUT, PhoneError, normalize_phone
from ledger.batch import BatchError, read_batch
from ledger.events import MESSAGE_MAX, EventError, parse_event
from ledger.signature import TOLERANCE_SECONDS, sign, verify
from passes.programs import Program, load_programs
from service.imports import COLUMNS, Parsed, parse_csv
from service.reports import MAX_DAYS, ReportQueryError, parse_period
from web import passkit
from web.errors import ApiError
from web.stores import IMPORT_MAX_ROWS, _csv_rows, _geojson_rows, _Rows

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS = load_programs(ROOT / "pass_templates")
COFFEE: Program = PROGRAMS["coffee"]
TIERS = frozenset(key for program in PROGRAMS.values() for key in program.tier_keys)

BOUNDED = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# any JSON value, nested a few levels deep
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
# plain text a field may hold: no control, bidirectional-formatting or surrogate characters
BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
plain_text = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters=BIDI),
    min_size=1,
    max_size=30,
).filter(lambda s: s.strip() == s and s != "")
accounts = st.from_regex(re.compile(ACCOUNT_PATTERN), fullmatch=True)


# -- ledger signature (ledger/signature.py) ---------------------------------------------------

secrets_ = st.text(st.characters(codec="utf-8"), min_size=1, max_size=40)
bodies = st.binary(max_size=200)
NOW = 1_800_000_000


@BOUNDED
@given(secret=secrets_, body=bodies, skew=st.integers(-TOLERANCE_SECONDS, TOLERANCE_SECONDS))
def test_a_signature_verifies_for_its_body_within_the_window(secret, body, skew):
    assert verify(secret, sign(secret, NOW, body), body, NOW + skew) is None


@BOUNDED
@given(secret=secrets_, body=bodies, other=bodies, skew=st.integers(-(10**6), 10**6))
def test_another_body_or_a_time_outside_the_window_does_not_verify(secret, body, other, skew):
    header = sign(secret, NOW, body)
    if other != body:
        assert verify(secret, header, other, NOW) is not None
    if abs(skew) > TOLERANCE_SECONDS:
        assert verify(secret, header, body, NOW + skew) is not None
    assert verify(secret + "x", header, body, NOW) is not None


@BOUNDED
@given(header=st.none() | st.text(max_size=200), body=bodies, now=st.floats(allow_nan=False, allow_infinity=False))
@example(header="t=１２３,v1=ab", body=b"", now=123.0)  # fullwidth digits: isdigit() but not ASCII
@example(header="t=" + "9" * 5000 + ",v1=ab", body=b"", now=0.0)
@example(header="t=1,v1=é", body=b"", now=1.0)  # compare_digest refuses non-ASCII str
def test_any_header_is_refused_with_a_reason_or_verifies_never_raises(header, body, now):
    answer = verify("secret", header, body, now)
    assert answer is None or isinstance(answer, str)
    if answer is None:
        assert header is not None  # only a real signature verifies


@BOUNDED
@given(secret=secrets_, body=bodies, parts=st.lists(st.sampled_from(["t=1", "v1=00", " ", "x=y", ""]), max_size=4))
def test_extra_parts_and_a_rolled_over_secret_still_verify(secret, body, parts):
    good = sign(secret, NOW, body)
    digest = good.split("v1=")[1]
    # several v1 entries: the ledger rolling its secret over; extra unknown parts are ignored
    header = ",".join([f"t={NOW}", "v1=" + "0" * 64, *[p for p in parts if not p.startswith("t=")], f"v1={digest}"])
    assert verify(secret, header, body, NOW) is None


# -- ledger events (ledger/batch.py, ledger/events.py) ----------------------------------------


@BOUNDED
@given(raw=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
@example(raw=b'{"events": [' + b"[" * 5000 + b"]" * 5000 + b"]}")
@example(raw=b'{"events": [{"version": ' + b"9" * 5000 + b"}]}")
@example(raw=b'{"events": ["\\ud800"]}')
def test_a_ledger_body_is_a_list_of_events_or_a_batch_error(raw):
    try:
        events = read_batch(raw)
    except BatchError:
        return
    assert isinstance(events, list)


def _event_values():
    counts = st.integers(-5, POINTS_MAX + 5) | st.sampled_from([0, POINTS_MAX, POINTS_MAX + 1, -1])
    return {
        "id": st.text(max_size=130) | st.from_regex(r"[\x21-\x7e]{1,128}", fullmatch=True),
        "card": st.from_regex(r"[0-9]{16}", fullmatch=True) | st.text(max_size=20) | st.integers(),
        "account": accounts | st.text(max_size=20),
        "version": st.integers(-2, VERSION_MAX + 2) | st.sampled_from([1, VERSION_MAX, VERSION_MAX + 1]) | json_scalars,
        "balance": counts | json_scalars,
        "pending": counts | st.none(),
        "tier": st.sampled_from(sorted(TIERS)) | st.text(max_size=40) | st.none(),
        "expiring": st.none()
        | st.fixed_dictionaries({"points": counts, "date": st.dates().map(str) | st.text(max_size=12)})
        | json_values,
        "message": plain_text | st.text(max_size=MESSAGE_MAX + 5) | st.none(),
        "occurred_at": st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat())
        | st.datetimes().map(lambda d: d.isoformat())
        | st.text(max_size=45)
        | st.none(),
    }


events = st.fixed_dictionaries({}, optional=_event_values()) | json_values


def _as_json(event) -> dict[str, Any]:
    out: dict[str, Any] = {"id": event.id, "version": event.version, "balance": event.balance}
    if event.card_number is not None:
        out["card"] = event.card_number
    if event.account is not None:
        out["account"] = event.account
    for name, value in (("tier", event.tier), ("pending", event.pending), ("message", event.message)):
        if value is not None:
            out[name] = value
    if event.expiring_points is not None:
        out["expiring"] = {"points": event.expiring_points, "date": event.expiring_date}
    if event.occurred_at is not None:
        out["occurred_at"] = event.occurred_at
    return out


@settings(BOUNDED, max_examples=400)
@given(raw=events)
@example(
    raw={
        "id": "a",
        "card": "1234567890123456",
        "version": 1,
        "balance": 0,
        "expiring": {"points": 1, "date": "2027-1-1"},
    }
)
@example(raw={"id": "a", "card": "1234567890123456", "version": 1, "balance": 0, "occurred_at": "2026-01-01T00:00:00"})
@example(raw={"id": "a", "account": "x", "version": 1, "balance": 0, "message": "\ud800"})
@example(raw={"id": "a", "account": "x", "version": 1, "balance": 0, "expiring": {"points": 1, "date": "20270101"}})
@example(raw={"id": "a", "account": "x", "version": 1.0, "balance": 0})
@example(raw={"id": "a", "account": "x", "version": True, "balance": 0})
def test_an_event_parses_and_round_trips_or_is_an_event_error(raw):
    # through JSON and back, as a post carries it (the lenient reader of ledger/batch.py)
    try:
        item = read_batch(json.dumps({"events": [raw]}).encode())[0]
    except (BatchError, ValueError):
        return  # a lone surrogate json.dumps cannot write, or a float it writes as Infinity
    try:
        event = parse_event(item, TIERS)
    except EventError as exc:
        assert str(exc)
        return
    # what is accepted is what was sent, and reads back the same
    assert event.id == item["id"] and event.version == item["version"] and event.balance == item["balance"]
    assert 1 <= event.version <= VERSION_MAX and 0 <= event.balance <= POINTS_MAX
    assert (event.card_number is not None) or (event.account is not None)
    assert event.tier is None or event.tier in TIERS
    if event.expiring_date is not None:
        assert event.expiring_date == item["expiring"]["date"]  # stored as sent: YYYY-MM-DD only
    again = parse_event(json.loads(json.dumps(_as_json(event))), TIERS)
    assert again == event


valid_events = st.fixed_dictionaries(
    {
        "id": st.from_regex(r"[\x21-\x7e]{1,128}", fullmatch=True),
        "version": st.integers(1, VERSION_MAX),
        "balance": st.integers(0, POINTS_MAX),
    },
    optional={
        "tier": st.sampled_from(sorted(TIERS)),
        "pending": st.integers(0, POINTS_MAX),
        "expiring": st.fixed_dictionaries({"points": st.integers(0, POINTS_MAX), "date": st.dates().map(str)}),
        "message": st.text(
            st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters=BIDI) | st.just("\n"),
            max_size=MESSAGE_MAX,
        ).filter(str.strip),
        "occurred_at": st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat().replace("+00:00", "Z")),
    },
).flatmap(lambda event: st.sampled_from([{**event, "card": "4000000000000002"}, {**event, "account": "acc-1"}]))


@BOUNDED
@given(raw=valid_events)
def test_every_event_the_schema_describes_is_accepted_as_sent(raw):
    event = parse_event(read_batch(json.dumps({"events": [raw]}).encode())[0], TIERS)
    assert _as_json(event) == raw


# -- PassKit path parameters and headers (web/passkit.py) -------------------------------------

PATH_PATTERNS = [
    ("deviceLibraryIdentifier", passkit.DEVICE_RE),
    ("passTypeIdentifier", passkit.PASS_TYPE_RE),
    ("serialNumber", passkit.SERIAL_RE),
]


def _request(path_params: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> Request:
    """A Starlette request with these path parameters and headers (what a handler reads them from)."""
    raw = [(name.encode(), value.encode("latin-1", "replace")) for name, value in (headers or {}).items()]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": raw, "path_params": path_params or {}})


@BOUNDED
@given(
    which=st.sampled_from(PATH_PATTERNS),
    value=st.text(max_size=140)
    | st.from_regex(r"[A-Za-z0-9._-]{1,140}", fullmatch=True)
    | st.from_regex(r"[A-Za-z0-9._-]{1,64}\n", fullmatch=True),
)
def test_a_path_parameter_is_taken_as_is_or_refused_as_invalid_path(which, value):
    name, pattern = which
    # the document states the pattern as `^...$`: JSON Schema (ECMA-262) reads it the same way, where `$`
    # does not match before a trailing newline
    documented = re.compile(pattern.pattern.replace("$", r"\Z"))
    try:
        taken = passkit._path(_request({name: value}), name, pattern)
    except ApiError as exc:
        assert exc.status == 400 and exc.code == "invalid_path"
        assert documented.search(value) is None
        return
    assert taken == value and documented.search(value) is not None


@BOUNDED
@given(value=st.none() | st.text(max_size=30) | st.integers(0, 2**64).map(str))
@example(value="９")
@example(value=str(2**63))
@example(value=str(2**63 - 1))
def test_a_passes_updated_since_tag_is_a_tag_we_could_have_issued_or_none(value):
    tag = passkit._parse_tag(value)
    assert tag is None or (isinstance(tag, int) and 0 <= tag <= 2**63 - 1)
    assert tag is None or (value is not None and value.isascii())  # only tags we write: ASCII digits
    if value is not None and value.isascii() and value.isdigit() and len(value) <= 19 and int(value) < 2**63:
        assert tag == int(value)  # every tag we issue reads back as itself


@BOUNDED
@given(header=st.text(max_size=60))
@example(header="Mon, 01 Jan 99999 00:00:00 GMT")
@example(header="Mon, 01 Jan 2026 00:00:00 +9999")
@example(header="Mon, 01 Jan 0000 00:00:00 GMT")
def test_if_modified_since_is_a_time_or_ignored_never_raises(header):
    since = passkit._if_modified_since(_request(headers={"if-modified-since": header}))
    assert since is None or math.isfinite(since)


@BOUNDED
@given(ts=st.integers(0, 2**33))
def test_last_modified_round_trips_through_if_modified_since(ts):
    header = formatdate(ts, usegmt=True)
    assert passkit._if_modified_since(_request(headers={"if-modified-since": header})) == ts


# -- phone numbers (cards/phones.py) ----------------------------------------------------------

E164 = re.compile(r"\+[1-9][0-9]{1,14}")
REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)


def _valid_numbers():
    def number(region: str, national: int) -> str | None:
        example_number = phonenumbers.example_number(region)
        return None if example_number is None else phonenumbers.format_number(example_number, national)

    formats = st.sampled_from(
        [
            phonenumbers.PhoneNumberFormat.E164,
            phonenumbers.PhoneNumberFormat.INTERNATIONAL,
            phonenumbers.PhoneNumberFormat.NATIONAL,
        ]
    )
    return st.tuples(st.sampled_from(REGIONS), formats).map(lambda rf: (rf[0], number(*rf))).filter(lambda p: p[1])


@BOUNDED
@given(
    text=st.text(max_size=50) | st.from_regex(r"[+0-9 ()-]{0,45}", fullmatch=True),
    region=st.sampled_from(["RU", "US", "DE", "", "zz", "ru"]),
)
@example(text="+7 900 123-45-67" + "1" * 30, region="RU")
@example(text="٨٩٠٠١٢٣٤٥٦٧", region="RU")  # Arabic-Indic digits
def test_a_phone_is_e164_or_a_phone_error(text, region):
    try:
        phone = normalize_phone(text, region)
    except PhoneError as exc:
        assert str(exc)
        return
    assert E164.fullmatch(phone), phone
    assert len(text.strip()) <= MAX_INPUT
    # idempotent: what is stored reads back as itself, in any region
    assert normalize_phone(phone, region) == phone
    assert normalize_phone(phone, "US") == phone


@BOUNDED
@given(pair=_valid_numbers())
def test_a_valid_number_in_any_format_normalizes_to_its_e164(pair):
    region, written = pair
    expected = phonenumbers.format_number(phonenumbers.parse(written, region), phonenumbers.PhoneNumberFormat.E164)
    assume(phonenumbers.is_valid_number(phonenumbers.parse(written, region)))
    assert normalize_phone(written, region) == expected
    assert normalize_phone(f"  {written}  ", region) == expected


# -- card import CSV (service/imports.py parse_csv) -------------------------------------------

card_rows = st.fixed_dictionaries(
    {"account": accounts.filter(lambda a: len(a) <= 128), "name": plain_text},
    optional={
        "phone": st.sampled_from(["+79001234567", "8 900 123-45-68", "+7 (900) 123 45 69"]),
        "email": st.sampled_from(["a@example.com", "x.y+z@mail.example.org"]),
        "balance": st.integers(0, POINTS_MAX).map(str),
        "tier": st.sampled_from(COFFEE.tier_keys),
        "locale": st.sampled_from(COFFEE.locales),
    },
)


def _write_csv(rows: list[dict[str, str]], delimiter: str, columns: list[str]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row.get(column, "") for column in columns])
    return out.getvalue().encode()


@BOUNDED
@given(raw=st.binary(max_size=400) | st.text(max_size=300).map(lambda s: s.encode("utf-8", "surrogatepass")))
@example(raw=b'account,name\n"unterminated')
@example(raw=b"\xef\xbb\xbf")
@example(raw=b"account,name\r\n1,\x00")
@example(raw=b"\n\naccount,name\n")
def test_any_card_file_parses_into_rows_or_errors_never_raises(raw):
    parsed = parse_csv(raw, COFFEE)
    assert isinstance(parsed, Parsed)
    lines = raw.count(b"\n") + raw.count(b"\r") + 1
    for error in parsed.errors:
        assert 0 <= error["line"] <= lines + 1 and error["reason"]


@BOUNDED
@given(
    rows=st.lists(card_rows, min_size=1, max_size=6, unique_by=lambda r: r["account"]),
    delimiter=st.sampled_from([",", ";"]),
    data=st.data(),
)
def test_valid_card_rows_round_trip(rows, delimiter, data):
    extra = data.draw(st.lists(st.sampled_from([c for c in COLUMNS if c not in ("account", "name")]), unique=True))
    columns = data.draw(st.permutations(["account", "name", *extra]))
    present = [{k: v for k, v in row.items() if k in columns} for row in rows]
    parsed = parse_csv(_write_csv(present, delimiter, columns), COFFEE)
    assert parsed.errors == []
    assert [r["account"] for r in parsed.rows] == [r["account"] for r in present]
    assert [r["name"] for r in parsed.rows] == [r["name"] for r in present]
    for row, got in zip(present, parsed.rows, strict=True):
        assert got["balance"] == int(row.get("balance", "0"))
        assert got["tier"] == row.get("tier", COFFEE.tier_for_balance(got["balance"]).key)
        assert got["locale"] == row.get("locale", COFFEE.default_locale)
        assert got["phone"] is None if "phone" not in row else E164.fullmatch(got["phone"])
        assert got["email"] == row.get("email")


@BOUNDED
@given(
    rows=st.lists(card_rows, min_size=1, max_size=5, unique_by=lambda r: r["account"]),
    bad=st.sampled_from(
        [
            {"balance": "-1"},
            {"balance": str(POINTS_MAX + 1)},
            {"balance": "１"},
            {"tier": "diamond"},
            {"locale": "xx"},
            {"phone": "12"},
            {"email": "not-an-email"},
            {"name": "a\u202eb"},
            {"account": "-starts-with-dash"},
        ]
    ),
    position=st.integers(0, 5),
)
def test_a_bad_row_is_named_whatever_rows_surround_it(rows, bad, position):
    position = min(position, len(rows))
    columns = list(COLUMNS)
    broken = {"account": "bad-row-account", "name": "Bad", **bad}
    rows = [r for r in rows if r["account"] != broken["account"]]
    position = min(position, len(rows))
    everything = [*rows[:position], broken, *rows[position:]]
    parsed = parse_csv(_write_csv(everything, ",", columns), COFFEE)
    (column,) = bad
    assert [(e["line"], e["column"]) for e in parsed.errors] == [(position + 2, column)]
    assert len(parsed.rows) == len(rows)  # the good rows are still read; the route stores nothing


# -- store import (web/stores.py: CSV and GeoJSON) --------------------------------------------

ZONES = ["Europe/Moscow", "UTC", "Asia/Yekaterinburg", "America/New_York"]
store_rows = st.fixed_dictionaries(
    {
        "id": st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True),
        "program": st.sampled_from(sorted(PROGRAMS)),
        "name": plain_text,
        "lat": st.floats(-80, 80, allow_nan=False),
        "lon": st.floats(-180, 180, allow_nan=False),
        "timezone": st.sampled_from(ZONES),
    },
    optional={"address": plain_text},
)


def _store_rows(raw: bytes, kind: str) -> _Rows:
    rows = _Rows(PROGRAMS)
    (_csv_rows if kind == "csv" else _geojson_rows)(raw, rows)
    return rows


@BOUNDED
@given(
    raw=st.binary(max_size=300)
    | st.text(max_size=300).map(lambda s: s.encode("utf-8", "surrogatepass"))
    | json_values.map(lambda v: json.dumps(v).encode()),
    kind=st.sampled_from(["csv", "geojson"]),
)
@example(raw=b"id,program,name,lat,lon\n1,coffee,A,1e400,1", kind="csv")
@example(raw=b"id,program,name,lat,lon\n1,coffee,A,nan,1", kind="csv")
@example(
    raw=b'{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Point","coordinates":[1,2]},"properties":{"id":[]}}]}',
    kind="geojson",
)
@example(
    raw=b'{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Point","coordinates":["a","b"]},"properties":{}}]}',
    kind="geojson",
)
@example(
    raw=b'{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Point","coordinates":[1,2]},"properties":{"timezone":"../../etc/passwd"}}]}',
    kind="geojson",
)
@example(raw=b"id;program;name;lat;lon\x0c\n1;coffee;A;1;1", kind="csv")
def test_any_store_file_is_rows_or_named_errors_never_raises(raw, kind):
    try:
        rows = _store_rows(raw, kind)
    except ApiError as exc:  # GeoJSON that is not JSON at all: the route's 400 invalid_json
        assert kind == "geojson" and exc.status == 400 and exc.code == "invalid_json"
        return
    lines = raw.count(b"\n") + raw.count(b"\r") + 1
    for error in rows.errors:
        assert 0 <= error["line"] <= max(lines, IMPORT_MAX_ROWS) + 1 and error["reason"]
    if not rows.errors:
        assert rows.locations  # an accepted file has stores in it
        for location in rows.locations:
            assert location.program in PROGRAMS and -180 <= location.lon <= 180 and location.timezone


def _store_csv(rows: list[dict[str, Any]], delimiter: str) -> bytes:
    columns = ["id", "program", "name", "lat", "lon", "address", "timezone"]
    return _write_csv(
        [{k: repr(v) if isinstance(v, float) else v for k, v in r.items()} for r in rows], delimiter, columns
    )


def _store_geojson(rows: list[dict[str, Any]]) -> bytes:
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [r["lon"], r["lat"]]},
            "properties": {k: v for k, v in r.items() if k not in ("lat", "lon")},
        }
        for r in rows
    ]
    return json.dumps({"type": "FeatureCollection", "features": features}).encode()


@BOUNDED
@given(
    rows=st.lists(store_rows, min_size=1, max_size=5, unique_by=lambda r: r["id"]),
    kind=st.sampled_from(["csv;", "csv,", "geojson"]),
)
def test_valid_store_rows_round_trip(rows, kind):
    raw = _store_geojson(rows) if kind == "geojson" else _store_csv(rows, kind[-1])
    parsed = _store_rows(raw, "geojson" if kind == "geojson" else "csv")
    assert parsed.errors == []
    got = [(s.id, s.program, s.name, s.lat, s.lon, s.address, s.timezone) for s in parsed.locations]
    want = [(r["id"], r["program"], r["name"], r["lat"], r["lon"], r.get("address", ""), r["timezone"]) for r in rows]
    assert got == want


@BOUNDED
@given(
    rows=st.lists(store_rows, min_size=0, max_size=4, unique_by=lambda r: r["id"]),
    bad=st.sampled_from(
        [
            {"lat": 91.0},
            {"lon": -180.5},
            {"program": "no-such-program"},
            {"timezone": "Mars/Olympus"},
            {"id": "has space"},
            {"name": "a\u0000b"},
        ]
    ),
    position=st.integers(0, 4),
    kind=st.sampled_from(["csv", "geojson"]),
)
def test_a_bad_store_row_is_named_with_its_line(rows, bad, position, kind):
    broken = {"id": "bad-store", "program": "coffee", "name": "Bad", "lat": 1.0, "lon": 1.0, "timezone": "UTC", **bad}
    rows = [r for r in rows if r["id"] != "bad-store"]
    position = min(position, len(rows))
    everything = [*rows[:position], broken, *rows[position:]]
    raw = _store_geojson(everything) if kind == "geojson" else _store_csv(everything, ",")
    parsed = _store_rows(raw, kind)
    # CSV: the file's line (the header is line 1); GeoJSON: the feature's position from 1
    assert [e["line"] for e in parsed.errors] == [position + (2 if kind == "csv" else 1)]
    assert len(parsed.locations) == len(rows)


@pytest.mark.parametrize("kind", ["csv", "geojson"])
def test_a_store_id_twice_is_refused_on_its_second_line(kind):
    row = {"id": "twice", "program": "coffee", "name": "A", "lat": 1.0, "lon": 1.0, "timezone": "UTC"}
    raw = _store_geojson([row, row]) if kind == "geojson" else _store_csv([row, row], ",")
    assert [e["line"] for e in _store_rows(raw, kind).errors] == [3 if kind == "csv" else 2]


# -- report periods (service/reports.py: `from` and `to` of GET /v1/reports/*) -------------------

day_texts = (
    st.none() | st.dates().map(date.isoformat) | st.text(max_size=12) | st.sampled_from(["0001-01-01", "9999-12-31"])
)


@BOUNDED
@given(first=day_texts, last=day_texts, today=st.dates())
@example(first=None, last="0001-01-06", today=date(2026, 12, 2))  # was OverflowError: a 500 (found by the fuzz)
@example(first="9999-12-31", last=None, today=date(9999, 12, 31))
def test_a_report_period_is_a_period_or_a_report_query_error(first, last, today):
    try:
        period = parse_period(first, last, today)
    except ReportQueryError:
        return
    start, end = date.fromisoformat(period.first), date.fromisoformat(period.last)
    assert start <= end and (end - start).days < MAX_DAYS
    # what was given is the period's end: `from` and `to` as sent, `to` defaulting to today
    assert period.last == (last or today.isoformat())
    if first:
        assert period.first == first
