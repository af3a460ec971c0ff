"""Small, strict readers for JSON request fields, and the field declarations built on them.

Every failure is a 400 `invalid_field` whose message names the field. A declaration (`Text`, `Integer`,
`Obj`, `Body`) reads with these same readers and also renders itself as the JSON Schema that /openapi.json
shows, so each rule (length, pattern, range, required, no unknown fields) is written once for both."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cards.numbers import ACCOUNT_PATTERN
from cards.text import forbidden_class, text_problem
from web.errors import ApiError

# Patterns are matched against the whole value (`fullmatch`; `$` alone lets a trailing newline through);
# their `^...$` form is what the OpenAPI document shows, where `$` means the end.
PHONE_RE = re.compile(r"^\+[1-9][0-9]{6,14}$")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
EMAIL_RE = re.compile(rf"^[^@\s{forbidden_class()}]{{1,64}}@{_LABEL}(?:\.{_LABEL})+$")
ACCOUNT_RE = re.compile(f"^{ACCOUNT_PATTERN}$")  # ^$ for the document; matched whole anyway
# JSON numbers beyond 2**53 lose precision in JavaScript clients
_MAX_INT = 2**53


def invalid(field: str, message: str) -> ApiError:
    return ApiError(400, "invalid_field", f"{field}: {message}")


def reject_unknown(data: dict[str, Any], allowed: set[str], where: str = "") -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise invalid(where + unknown[0], "unknown field")


def text(
    data: dict[str, Any],
    field: str,
    *,
    required: bool = True,
    max_len: int = 200,
    pattern: re.Pattern[str] | None = None,
    multiline: bool = False,
    where: str = "",
) -> str | None:
    """A string, trimmed; refused when it breaks the text rule of cards/text.py (`multiline` lets `\\n`
    through) or does not match `pattern` as a whole."""
    value = data.get(field)
    name = where + field
    if value is None:
        if required:
            raise invalid(name, "required")
        return None
    if not isinstance(value, str):
        raise invalid(name, "must be a string")
    value = value.strip()
    if not value:
        raise invalid(name, "must not be empty")
    if len(value) > max_len:
        raise invalid(name, f"at most {max_len} characters")
    problem = text_problem(value, multiline=multiline)
    if problem is not None:
        raise invalid(name, problem)
    if pattern is not None and not pattern.fullmatch(value):
        raise invalid(name, "malformed")
    return value


def integer(
    data: dict[str, Any],
    field: str,
    *,
    required: bool = True,
    default: int | None = None,
    minimum: int | None = None,
    maximum: int = _MAX_INT,
    where: str = "",
) -> int | None:
    value = data.get(field)
    name = where + field
    if value is None:
        if required:
            raise invalid(name, "required")
        return default
    # bool is an int in Python but never a count of points
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(name, "must be an integer")
    if minimum is not None and value < minimum:
        raise invalid(name, f"must be at least {minimum}")
    if value > maximum:
        raise invalid(name, f"must be at most {maximum}")
    return value


def obj(data: dict[str, Any], field: str, *, required: bool = True, where: str = "") -> dict[str, Any] | None:
    value = data.get(field)
    name = where + field
    if value is None:
        if required:
            raise invalid(name, "required")
        return None
    if not isinstance(value, dict):
        raise invalid(name, "must be an object")
    return value


# -- declarations: read a field and describe it -----------------------------------------------

Choices = Mapping[str, Sequence[str]]
"""Value sets known only once programs are loaded (program names, tiers, locales), by name."""


def plain_text_pattern(multiline: bool = False) -> str:
    """What `text` refuses besides its own pattern (the text rule; nothing but white space), for the document."""
    refused = forbidden_class(multiline)
    return f"^[^{refused}]*[^\\s{refused}][^{refused}]*$"


class Field(Protocol):
    @property
    def required(self) -> bool: ...

    def read(self, data: dict[str, Any], name: str, where: str = "") -> Any: ...

    def schema(self, choices: Choices) -> dict[str, Any]: ...


def _described(schema: dict[str, Any], description: str, required: bool) -> dict[str, Any]:
    if description:
        schema["description"] = description
    if not required:
        # the readers take null for absent, so an optional field accepts it
        schema["type"] = [schema["type"], "null"]
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
    return schema


@dataclass(frozen=True)
class Text:
    """A string, trimmed of surrounding white space, non-empty, within the text rule (cards/text.py)."""

    max_len: int = 200
    pattern: re.Pattern[str] | None = None
    required: bool = True
    # `\n` allowed (a text shown on several lines); other control characters never are
    multiline: bool = False
    format: str | None = None
    # the Choices entry this value must be one of; checked by the handler, whose answer depends on
    # context (an unknown program is a 404, a tier must belong to the chosen program)
    one_of: str | None = None
    description: str = ""

    def read(self, data: dict[str, Any], name: str, where: str = "") -> str | None:
        return text(
            data,
            name,
            required=self.required,
            max_len=self.max_len,
            pattern=self.pattern,
            multiline=self.multiline,
            where=where,
        )

    def schema(self, choices: Choices) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "string",
            "minLength": 1,
            "maxLength": self.max_len,
            "pattern": self.pattern.pattern if self.pattern else plain_text_pattern(self.multiline),
        }
        if self.format:
            schema["format"] = self.format
        if self.one_of is not None and choices[self.one_of]:
            schema["enum"] = sorted(choices[self.one_of])
        return _described(schema, self.description, self.required)


@dataclass(frozen=True)
class Integer:
    """A JSON integer (never a boolean), within bounds."""

    required: bool = True
    default: int | None = None
    minimum: int | None = None
    maximum: int = _MAX_INT
    description: str = ""

    def read(self, data: dict[str, Any], name: str, where: str = "") -> int | None:
        return integer(
            data,
            name,
            required=self.required,
            default=self.default,
            minimum=self.minimum,
            maximum=self.maximum,
            where=where,
        )

    def schema(self, choices: Choices) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "integer", "maximum": self.maximum}
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.default is not None:
            schema["default"] = self.default
        return _described(schema, self.description, self.required)


@dataclass(frozen=True)
class Body:
    """A JSON object: its fields in the order they are checked, and no others. Also the request body
    model the document names (`name` becomes its components/schemas key)."""

    name: str
    fields: Mapping[str, Field]
    description: str = ""

    def refuse_unknown(self, data: dict[str, Any], where: str = "") -> None:
        reject_unknown(data, set(self.fields), where)

    def value(self, data: dict[str, Any], name: str, where: str = "") -> Any:
        return self.fields[name].read(data, name, where)

    def read(self, data: dict[str, Any], where: str = "") -> dict[str, Any]:
        self.refuse_unknown(data, where)
        return {name: spec.read(data, name, where) for name, spec in self.fields.items()}

    def schema(self, choices: Choices) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {name: spec.schema(choices) for name, spec in self.fields.items()},
            "additionalProperties": False,
        }
        required = [name for name, spec in self.fields.items() if spec.required]
        if required:
            schema["required"] = required
        if self.description:
            schema["description"] = self.description
        return schema


@dataclass(frozen=True)
class Obj:
    """A nested object field; its own fields are named `outer.inner` in errors."""

    body: Body
    required: bool = True

    def read(self, data: dict[str, Any], name: str, where: str = "") -> dict[str, Any] | None:
        value = obj(data, name, required=self.required, where=where)
        return None if value is None else self.body.read(value, f"{where}{name}.")

    def schema(self, choices: Choices) -> dict[str, Any]:
        return _described(self.body.schema(choices), "", self.required)
