"""JSON Schema from Google's `walletobjects` discovery document, strict enough to catch misplaced fields.

The discovery document ships in `google-api-python-client` (test-only dependency):
`googleapiclient/discovery_cache/documents/walletobjects.v1.json`. Its `schemas` are converted to
JSON Schema (draft 2020-12), one `$defs` entry per schema:

- every object rejects unknown properties (`additionalProperties: false`), so a field on the wrong
  resource (say `hexBackgroundColor` on a LoyaltyObject) or a misspelt one fails;
- properties and enum values marked deprecated are left out, so they fail too (`kind`, `locations`,
  `qrCode` for `QR_CODE`, lowercase states);
- `int64`/`uint64` strings accept a JSON integer or a string of digits (Google's JSON mapping);
- "Required." in a property's description becomes `required`; the discovery document has no other
  required list, so a few rules stated in prose are added by hand (`HAND_RULES`: one balance subtype,
  one image source, the `<issuerId>.<suffix>` id alphabet, text module ids without dots, at most 10
  merchant locations and messages, coordinate ranges, `#rrggbb`/`#rgb` colours);
- fields the platform sets (`OUTPUT_ONLY`) are rejected in request bodies.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Mapping
from importlib.resources import files
from typing import Any

from jsonschema import Draft202012Validator

# read as a package resource: google-api-python-client ships neither types nor py.typed
DISCOVERY_PATH = files("googleapiclient") / "discovery_cache" / "documents" / "walletobjects.v1.json"

ID_PATTERN = r"^[0-9]+\.[A-Za-z0-9._-]+$"
_REQUIRED = re.compile(r"^\s*Required\b")

# Set by Google; never part of what we send.
OUTPUT_ONLY: Mapping[str, frozenset[str]] = {
    "LoyaltyObject": frozenset({"hasUsers", "hasLinkedDevice", "classReference"}),
    "LoyaltyClass": frozenset({"review"}),
}

# Rules the discovery document states only in prose (see ../shared/facts/google-wallet.md §1.2-1.4).
HAND_RULES: Mapping[str, Mapping[str, Any]] = {
    "LoyaltyPoints": {"required": ["balance"]},
    "LoyaltyPointsBalance": {"minProperties": 1, "maxProperties": 1},
    "Image": {"oneOf": [{"required": ["sourceUri"]}, {"required": ["privateImageId"]}]},
    "ImageUri": {"required": ["uri"]},
    "TranslatedString": {"required": ["language", "value"]},
    "Uri": {"required": ["uri"], "properties": {"uri": {"pattern": r"^[A-Za-z][A-Za-z0-9+.-]*:"}}},
    "TextModuleData": {"properties": {"id": {"pattern": r"^[A-Za-z0-9_-]+$"}}},
    "MerchantLocation": {
        "required": ["latitude", "longitude"],
        "properties": {
            "latitude": {"minimum": -90, "maximum": 90},
            "longitude": {"minimum": -180, "maximum": 180},
        },
    },
    "LoyaltyClass": {
        "properties": {
            "id": {"pattern": ID_PATTERN},
            "hexBackgroundColor": {"pattern": r"^#([0-9a-fA-F]{6}|[0-9a-fA-F]{3})$"},
            "merchantLocations": {"maxItems": 10},
            "messages": {"maxItems": 10},
        }
    },
    "LoyaltyObject": {
        "properties": {
            "id": {"pattern": ID_PATTERN},
            "classId": {"pattern": ID_PATTERN},
            "merchantLocations": {"maxItems": 10},
            "messages": {"maxItems": 10},
        }
    },
}


def _property(node: Mapping[str, Any]) -> dict[str, Any]:
    """One discovery property (or `items`) as JSON Schema."""
    if "$ref" in node:
        return {"$ref": f"#/$defs/{node['$ref']}"}
    kind = node.get("type")
    out: dict[str, Any]
    if kind == "string":
        if node.get("format") in ("int64", "uint64"):
            out = {"anyOf": [{"type": "integer"}, {"type": "string", "pattern": r"^-?[0-9]+$"}]}
        else:
            out = {"type": "string"}
        if "enum" in node:
            deprecated = node.get("enumDeprecated") or [False] * len(node["enum"])
            out["enum"] = [v for v, dep in zip(node["enum"], deprecated, strict=True) if not dep]
    elif kind == "integer":
        out = {"type": "integer"}
        if node.get("format") == "uint32":
            out["minimum"] = 0
    elif kind == "number":
        out = {"type": "number"}
    elif kind == "boolean":
        out = {"type": "boolean"}
    elif kind == "array":
        out = {"type": "array", "items": _property(node["items"])}
    elif kind == "object":
        out = _object(node)
    elif kind == "any":
        out = {}
    else:
        raise ValueError(f"discovery type {kind!r} not handled")
    return out


def _object(node: Mapping[str, Any], name: str | None = None) -> dict[str, Any]:
    if "additionalProperties" in node and "properties" not in node:  # a map
        return {"type": "object", "additionalProperties": _property(node["additionalProperties"])}
    skip = OUTPUT_ONLY.get(name or "", frozenset())
    props: dict[str, Any] = {}
    required: list[str] = []
    for key, prop in node.get("properties", {}).items():
        if prop.get("deprecated") or key in skip:
            continue
        props[key] = _property(prop)
        if _REQUIRED.match(prop.get("description", "")):
            required.append(key)
    out: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        out["required"] = required
    return out


def _merge(schema: dict[str, Any], rules: Mapping[str, Any]) -> None:
    for key, value in rules.items():
        if key == "properties":
            for prop, extra in value.items():
                schema["properties"][prop].update(extra)  # beside a $ref too: 2020-12 applies both
        elif key == "required":
            schema["required"] = sorted(set(schema.get("required", [])) | set(value))
        else:
            schema[key] = copy.deepcopy(value)


@functools.cache
def discovery() -> dict[str, Any]:
    return json.loads(DISCOVERY_PATH.read_text(encoding="utf-8"))


@functools.cache
def definitions() -> dict[str, Any]:
    defs: dict[str, Any] = {}
    for name, node in discovery()["schemas"].items():
        if node.get("type") != "object":
            raise ValueError(f"schema {name} is not an object")
        defs[name] = _object(node, name)
    for name, rules in HAND_RULES.items():
        _merge(defs[name], rules)
    return defs


@functools.cache
def validator(resource: str) -> Draft202012Validator:
    """A validator of one discovery schema (`LoyaltyClass`, `LoyaltyObject`, `Resources`, ...)."""
    defs = definitions()
    if resource not in defs:
        raise KeyError(f"no schema {resource!r} in {DISCOVERY_PATH.name}")
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$ref": f"#/$defs/{resource}", "$defs": defs}
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def errors(resource: str, body: Any) -> list[str]:
    """Every violation of `body` against `resource`, as `path: message` lines (empty when valid)."""
    found = sorted(validator(resource).iter_errors(body), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in found]


def assert_valid(resource: str, body: Any) -> None:
    problems = errors(resource, body)
    assert not problems, f"{resource} does not match {DISCOVERY_PATH.name}:\n" + "\n".join(problems)
