"""Program templates: one folder per program under `pass_templates/`, loaded once per process.

A folder holds `program.json` (prefix, tiers, colors, support contact), the images
(icon, logo, strip at @1x/@2x/@3x) and one `xx.lproj/pass.strings` per locale. Words
(organization and program names, labels, tier names, terms) live only in the strings
files, so translators touch one place and `pass.json` carries localization keys.
Every static file is read and SHA-1 hashed here, once, so building a pass hashes only
its `pass.json`.

Folder layout (a new program = a copy of `coffee/` with another `program` and prefix):
  program.json   {"program": "coffee", "card_prefix": "7790" (1-7 digits),
                  "locales": ["ru", "en"], "default_locale": "ru",
                  "support": {"phone", "email", "url"},
                  "barcode_format": "PKBarcodeFormatQR", "sharing_prohibited": true,
                  "tiers": [{"key": "base", "threshold": 0, "accrual_percent": 5,
                             "colors": {"background": "rgb(..)", "foreground": .., "label": ..}}, ...]}
                 thresholds are each tier's minimum balance, first 0, strictly increasing.
  xx.lproj/pass.strings   UTF-16 with BOM; the same keys in every locale: REQUIRED_STRING_KEYS
                 plus "tier.<key>" per tier (the tier's name).
  icon.png, logo.png, strip.png and their @2x/@3x: PNG, at most IMAGE_POINTS x scale pixels.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from types import MappingProxyType
from typing import Any

from passes.apple.strings import StringsError, is_utf16_with_bom, parse_strings
from passes.png import png_size

PROGRAM_FILE = "program.json"
STRINGS_FILE = "pass.strings"

# Allotted sizes in points for a store card (Apple's Pass Design and Creation guide).
IMAGE_POINTS: Mapping[str, tuple[int, int]] = MappingProxyType(
    {"icon": (29, 29), "logo": (160, 50), "strip": (375, 123)}
)
IMAGE_SCALES = (1, 2, 3)

# Keys every locale's pass.strings must define (plus "tier.<key>" for every tier).
REQUIRED_STRING_KEYS: tuple[str, ...] = (
    "program.organization",
    "program.name",
    "pass.description",
    "label.balance",
    "label.pending",
    "label.tier",
    "label.member",
    "label.to_next_tier",
    "label.expiring_points",
    "label.expiring_date",
    "label.last_operation",
    "label.accrual",
    "label.terms",
    "label.support",
    "label.card_number",
    "change.balance",
    "change.tier",
    "program.terms",
    "last_operation.none",
)
CHANGE_MESSAGE_KEYS = ("change.balance", "change.tier")

# The template's vocabulary, shared with passes/apple/validate.py: CSS rgb() colours and PassKit's
# barcode formats (a program names them as Apple does; the Google object maps them).
COLOR_RE = re.compile(r"rgb\(\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*\)")
BARCODE_FORMATS = frozenset(
    {"PKBarcodeFormatQR", "PKBarcodeFormatPDF417", "PKBarcodeFormatAztec", "PKBarcodeFormatCode128"}
)
_KEY = re.compile(r"^[a-z][a-z0-9_-]*$")
_LOCALE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]+)*$")


class ProgramError(ValueError):
    """A malformed program template; the message names the folder and the problem."""


def tier_string_key(tier_key: str) -> str:
    return f"tier.{tier_key}"


def image_file_name(image: str, scale: int) -> str:
    return f"{image}.png" if scale == 1 else f"{image}@{scale}x.png"


@dataclass(frozen=True)
class Tier:
    key: str
    names: Mapping[str, str]
    background_color: str
    foreground_color: str
    label_color: str
    accrual_percent: int
    threshold: int
    next_threshold: int | None

    def __hash__(self) -> int:  # names is a mapping; the key identifies a tier within a program
        return hash(self.key)

    def name(self, locale: str) -> str:
        return self.names.get(locale) or next(iter(self.names.values()))

    def points_to_next(self, balance: int) -> int | None:
        """Points still missing for the next tier; None on the top tier."""
        if self.next_threshold is None:
            return None
        return max(0, self.next_threshold - balance)


@dataclass(frozen=True)
class TemplateFile:
    """A static file of every pass of a program, with its manifest hash computed at load."""

    name: str
    data: bytes
    sha1: str


@dataclass(frozen=True, eq=False)
class Program:
    program: str
    card_prefix: str
    locales: tuple[str, ...]
    default_locale: str
    tiers: tuple[Tier, ...]
    strings: Mapping[str, Mapping[str, str]]
    support: Mapping[str, str]
    barcode_format: str
    files: tuple[TemplateFile, ...]
    fingerprint: str
    sharing_prohibited: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict)

    # --- tiers -------------------------------------------------------------------------
    @property
    def tier_keys(self) -> tuple[str, ...]:
        return tuple(t.key for t in self.tiers)

    @property
    def default_tier(self) -> Tier:
        return self.tiers[0]

    def tier(self, key: str | None) -> Tier | None:
        for t in self.tiers:
            if t.key == key:
                return t
        return None

    def tier_for_balance(self, balance: int) -> Tier:
        chosen = self.tiers[0]
        for t in self.tiers:
            if balance >= t.threshold:
                chosen = t
        return chosen

    # --- words -------------------------------------------------------------------------
    def _locale(self, locale: str | None) -> str:
        if locale is not None and locale in self.strings:
            return locale
        if locale and locale.split("-")[0] in self.strings:
            return locale.split("-")[0]
        return self.default_locale

    def text(self, key: str, locale: str | None = None) -> str:
        """The localized string for `key` (default locale as fallback)."""
        table = self.strings[self._locale(locale)]
        if key in table:
            return table[key]
        return self.strings[self.default_locale].get(key, key)

    def name(self, locale: str | None = None) -> str:
        return self.text("program.name", locale)

    def organization(self, locale: str | None = None) -> str:
        return self.text("program.organization", locale)

    # --- files -------------------------------------------------------------------------
    @property
    def images(self) -> tuple[TemplateFile, ...]:
        return tuple(f for f in self.files if f.name.endswith(".png"))

    def file(self, name: str) -> TemplateFile | None:
        for f in self.files:
            if f.name == name:
                return f
        return None

    def summary(self, locale: str | None = None) -> dict[str, Any]:
        """Public, JSON-able description of the program (GET /v1/programs)."""
        loc = self._locale(locale)
        return {
            "program": self.program,
            "name": self.text("program.name", loc),
            "names": {lc: self.text("program.name", lc) for lc in self.locales},
            "organization": self.text("program.organization", loc),
            "locale": loc,
            "locales": list(self.locales),
            "default_locale": self.default_locale,
            "tiers": [
                {
                    "key": t.key,
                    "name": t.name(loc),
                    "names": dict(t.names),
                    "accrual_percent": t.accrual_percent,
                    "threshold": t.threshold,
                    "next_threshold": t.next_threshold,
                    "colors": {
                        "background": t.background_color,
                        "foreground": t.foreground_color,
                        "label": t.label_color,
                    },
                }
                for t in self.tiers
            ],
            "support": dict(self.support),
        }


# --- loading -----------------------------------------------------------------------------


def _fail(folder: Path, message: str) -> ProgramError:
    return ProgramError(f"template {folder}: {message}")


def _color(folder: Path, where: str, value: Any) -> str:
    m = COLOR_RE.fullmatch(value) if isinstance(value, str) else None
    if not m or any(int(g) > 255 for g in m.groups()):
        raise _fail(folder, f'{where} must be a color like "rgb(23, 187, 82)", got {value!r}')
    return "rgb({}, {}, {})".format(*(int(g) for g in m.groups()))


def _int(folder: Path, where: str, value: Any, minimum: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise _fail(folder, f"{where} must be an integer >= {minimum}, got {value!r}")
    return value


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def load_template(folder: Path) -> Program:
    """Read and check one program folder; ProgramError names the first problem found."""
    folder = Path(folder)
    program_path = folder / PROGRAM_FILE
    try:
        program_bytes = program_path.read_bytes()
    except OSError as exc:
        raise _fail(folder, f"cannot read {PROGRAM_FILE}: {exc.strerror}") from None
    try:
        spec = json.loads(program_bytes)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(folder, f"{PROGRAM_FILE} is not valid JSON: {exc}") from None
    if not isinstance(spec, dict):
        raise _fail(folder, f"{PROGRAM_FILE} must hold a JSON object")

    program = spec.get("program")
    if not isinstance(program, str) or not _KEY.match(program):
        raise _fail(folder, f'"program" must be a lowercase key, got {program!r}')
    prefix = spec.get("card_prefix")
    if not isinstance(prefix, str) or not prefix.isascii() or not prefix.isdigit() or not 1 <= len(prefix) <= 7:
        raise _fail(folder, f'"card_prefix" must be a string of 1 to 7 digits, got {prefix!r}')

    locales = spec.get("locales")
    if (
        not isinstance(locales, list)
        or not locales
        or not all(isinstance(lc, str) and _LOCALE.match(lc) for lc in locales)
        or len(set(locales)) != len(locales)
    ):
        raise _fail(folder, f'"locales" must be a non-empty list of distinct locale codes, got {locales!r}')
    default_locale = spec.get("default_locale", locales[0])
    if not isinstance(default_locale, str) or default_locale not in locales:
        raise _fail(folder, f'"default_locale" {default_locale!r} is not one of {locales}')

    found_lproj = sorted(p.name[: -len(".lproj")] for p in folder.glob("*.lproj") if p.is_dir())
    if sorted(locales) != found_lproj:
        raise _fail(folder, f"locales {sorted(locales)} do not match the .lproj folders {found_lproj}")

    # --- tiers --------------------------------------------------------------------------
    raw_tiers = spec.get("tiers")
    if not isinstance(raw_tiers, list) or not raw_tiers:
        raise _fail(folder, '"tiers" must be a non-empty list')
    parsed: list[dict[str, Any]] = []
    for i, rt in enumerate(raw_tiers):
        where = f"tiers[{i}]"
        if not isinstance(rt, dict):
            raise _fail(folder, f"{where} must be an object")
        key = rt.get("key")
        if not isinstance(key, str) or not _KEY.match(key):
            raise _fail(folder, f"{where}.key must be a lowercase key, got {key!r}")
        colors = rt.get("colors")
        if not isinstance(colors, dict):
            raise _fail(folder, f"{where}.colors must be an object with background, foreground, label")
        parsed.append(
            {
                "key": key,
                "threshold": _int(folder, f"{where}.threshold", rt.get("threshold")),
                "accrual_percent": _int(folder, f"{where}.accrual_percent", rt.get("accrual_percent")),
                "background_color": _color(folder, f"{where}.colors.background", colors.get("background")),
                "foreground_color": _color(folder, f"{where}.colors.foreground", colors.get("foreground")),
                "label_color": _color(folder, f"{where}.colors.label", colors.get("label")),
            }
        )
    keys = [t["key"] for t in parsed]
    if len(set(keys)) != len(keys):
        raise _fail(folder, f"tier keys must be unique, got {keys}")
    if parsed[0]["threshold"] != 0:
        raise _fail(folder, "the first tier must start at threshold 0")
    thresholds = [t["threshold"] for t in parsed]
    if any(b <= a for a, b in pairwise(thresholds)):
        raise _fail(folder, f"tier thresholds must strictly increase, got {thresholds}")

    # --- strings ------------------------------------------------------------------------
    files: list[TemplateFile] = []
    strings: dict[str, Mapping[str, str]] = {}
    for lc in sorted(locales):
        name = f"{lc}.lproj/{STRINGS_FILE}"
        try:
            data = (folder / name).read_bytes()
        except OSError:
            raise _fail(folder, f"missing {name}") from None
        if not is_utf16_with_bom(data):
            raise _fail(folder, f"{name} must be UTF-16 with a byte order mark")
        try:
            table = parse_strings(data)
        except StringsError as exc:
            raise _fail(folder, f"{name}: {exc}") from None
        strings[lc] = MappingProxyType(table)
        files.append(TemplateFile(name, data, _sha1(data)))
    required = set(REQUIRED_STRING_KEYS) | {tier_string_key(k) for k in keys}
    reference = set(strings[default_locale])
    for lc, words in strings.items():
        missing = sorted(required - set(words))
        if missing:
            raise _fail(folder, f"{lc}.lproj/{STRINGS_FILE} lacks keys {missing}")
        if set(words) != reference:
            diff = sorted(set(words) ^ reference)
            raise _fail(folder, f"{lc}.lproj/{STRINGS_FILE} and {default_locale}.lproj differ in keys {diff}")
        for ck in CHANGE_MESSAGE_KEYS:
            if "%@" not in words[ck]:
                raise _fail(folder, f'{lc}.lproj/{STRINGS_FILE}: "{ck}" must contain %@')

    tiers = tuple(
        Tier(
            names=MappingProxyType({lc: strings[lc][tier_string_key(t["key"])] for lc in locales}),
            next_threshold=thresholds[i + 1] if i + 1 < len(parsed) else None,
            **t,
        )
        for i, t in enumerate(parsed)
    )

    # --- images -------------------------------------------------------------------------
    for image, (pw, ph) in IMAGE_POINTS.items():
        for scale in IMAGE_SCALES:
            name = image_file_name(image, scale)
            try:
                data = (folder / name).read_bytes()
            except OSError:
                raise _fail(folder, f"missing image {name}") from None
            try:
                w, h = png_size(data)
            except ValueError:
                raise _fail(folder, f"{name} is not a PNG image") from None
            if w > pw * scale or h > ph * scale:
                raise _fail(folder, f"{name} is {w}x{h} px, larger than the allotted {pw * scale}x{ph * scale}")
            files.append(TemplateFile(name, data, _sha1(data)))

    support = spec.get("support") or {}
    if not isinstance(support, dict) or not all(isinstance(v, str) for v in support.values()):
        raise _fail(folder, '"support" must be an object of strings (phone, email, url)')
    barcode_format = spec.get("barcode_format", "PKBarcodeFormatQR")
    if barcode_format not in BARCODE_FORMATS:
        raise _fail(folder, f'"barcode_format" {barcode_format!r} is not a PassKit barcode format')

    sharing_prohibited = spec.get("sharing_prohibited", True)
    if not isinstance(sharing_prohibited, bool):
        raise _fail(folder, '"sharing_prohibited" must be true or false')

    files.sort(key=lambda f: f.name)
    fp = hashlib.sha256(program_bytes)
    for f in files:
        fp.update(f.name.encode() + b"\0" + f.sha1.encode())
    known = {
        "program",
        "card_prefix",
        "locales",
        "default_locale",
        "tiers",
        "support",
        "barcode_format",
        "sharing_prohibited",
    }
    return Program(
        program=program,
        card_prefix=prefix,
        locales=tuple(locales),
        default_locale=default_locale,
        tiers=tiers,
        strings=MappingProxyType(strings),
        support=MappingProxyType(dict(support)),
        barcode_format=barcode_format,
        files=tuple(files),
        fingerprint=fp.hexdigest(),
        sharing_prohibited=sharing_prohibited,
        extra=MappingProxyType({k: v for k, v in spec.items() if k not in known}),
    )


def load_programs(root: Path) -> dict[str, Program]:
    """Every subfolder of `root` holding a program.json; program keys and prefixes must be unique."""
    root = Path(root)
    if not root.is_dir():
        raise ProgramError(f"templates folder {root} does not exist")
    result: dict[str, Program] = {}
    prefixes: dict[str, str] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and (p / PROGRAM_FILE).is_file()):
        t = load_template(folder)
        if t.program in result:
            raise _fail(folder, f"program {t.program!r} is already defined by another folder")
        for other_prefix, other in prefixes.items():
            if other_prefix.startswith(t.card_prefix) or t.card_prefix.startswith(other_prefix):
                raise _fail(folder, f"card prefix {t.card_prefix} overlaps program {other!r} ({other_prefix})")
        prefixes[t.card_prefix] = t.program
        result[t.program] = t
    return result
