"""What a text may hold when it can reach a pass or a lock screen (member names, ledger messages, campaign
and message texts): one rule, checked by the HTTP readers (web/validation.py) and the ledger parser.

Refused, with a reason that says which:
- C0 and C1 control characters (U+0000-U+001F, U+007F-U+009F), and the line and paragraph separators
  U+2028/U+2029; a multi-line field allows `\\n` and nothing else of these;
- bidirectional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069): they make a text
  display in an order other than the one it is stored in ("Trojan Source"), so a lock screen could
  show a different amount or name than the one sent;
- lone UTF-16 surrogates (U+D800-U+DFFF): JSON escapes can spell them, Python strings hold them, but
  no UTF-8 encoder takes them, so a store or a pass would fail on them later.

The marks U+200E/U+200F (LRM, RLM) and U+061C (ALM) are allowed: Arabic and Hebrew names and mixed
texts need them to display right, and each only sets the direction of its own position; it cannot
reverse a span of text the way an override does."""

from __future__ import annotations

import re

_CONTROL = "\\u0000-\\u0009\\u000b-\\u001f\\u007f-\\u009f\\u2028\\u2029"
_NEWLINE = "\\u000a"
_BIDI = "\\u202a-\\u202e\\u2066-\\u2069"
_SURROGATE = "\\ud800-\\udfff"

CONTROL_MESSAGE = "control characters are not allowed"
BIDI_MESSAGE = "bidirectional formatting characters are not allowed"
SURROGATE_MESSAGE = "lone UTF-16 surrogates are not allowed"


def forbidden_class(multiline: bool = False) -> str:
    """The refused characters as the inside of a regex character class, in the `\\uXXXX` form that both
    Python and JSON Schema (ECMA-262) patterns read, so the OpenAPI document states the same rule."""
    return _CONTROL + ("" if multiline else _NEWLINE) + _BIDI + _SURROGATE


_FORBIDDEN = {multiline: re.compile(f"[{forbidden_class(multiline)}]") for multiline in (False, True)}
_IS_BIDI = re.compile(f"[{_BIDI}]")
_IS_SURROGATE = re.compile(f"[{_SURROGATE}]")


def text_problem(value: str, *, multiline: bool = False) -> str | None:
    """None when `value` may be shown, else why not (without echoing the character itself)."""
    found = _FORBIDDEN[multiline].search(value)
    if found is None:
        return None
    char = found.group()
    if _IS_SURROGATE.fullmatch(char):
        return SURROGATE_MESSAGE
    if _IS_BIDI.fullmatch(char):
        return BIDI_MESSAGE
    return CONTROL_MESSAGE


def has_lone_surrogate(value: str) -> bool:
    """True when `value` cannot be encoded as UTF-8 (for strings that are not shown but still stored)."""
    return _IS_SURROGATE.search(value) is not None
