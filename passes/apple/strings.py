"""Apple `.strings` files (`"key" = "value";`), as used by `xx.lproj/pass.strings`.

Apple asks for UTF-16 for non-ASCII text; we write UTF-16LE with a BOM (as pass-js does)
and read UTF-16 (either byte order, BOM required) or plain UTF-8/ASCII.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping

_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r"}
_TOKEN = re.compile(
    r'\s+|/\*.*?\*/|//[^\n]*|"(?P<str>(?:[^"\\]|\\.)*)"|(?P<punct>[=;])',
    re.S,
)


class StringsError(ValueError):
    """A `.strings` file that cannot be parsed."""


def decode_strings_bytes(data: bytes) -> str:
    if data.startswith(codecs.BOM_UTF16_LE) or data.startswith(codecs.BOM_UTF16_BE):
        return data.decode("utf-16")
    if data.startswith(codecs.BOM_UTF8):
        return data[3:].decode("utf-8")
    return data.decode("utf-8")


def _unescape(raw: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), raw, flags=re.S)


def parse_strings(data: bytes | str) -> dict[str, str]:
    """Parse a `.strings` file; StringsError on bad syntax or a duplicated key."""
    text = decode_strings_bytes(data) if isinstance(data, bytes) else data
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            line = text.count("\n", 0, pos) + 1
            raise StringsError(f"unexpected text at line {line}: {text[pos : pos + 20]!r}")
        pos = m.end()
        if m.group("str") is not None:
            tokens.append(("s", _unescape(m.group("str"))))
        elif m.group("punct"):
            tokens.append(("p", m.group("punct")))
    result: dict[str, str] = {}
    i = 0
    while i < len(tokens):
        chunk = tokens[i : i + 4]
        if [t for t, _ in chunk] != ["s", "p", "s", "p"] or chunk[1][1] != "=" or chunk[3][1] != ";":
            raise StringsError(f'expected "key" = "value"; near entry {len(result) + 1}')
        key, value = chunk[0][1], chunk[2][1]
        if key in result:
            raise StringsError(f"duplicate key {key!r}")
        result[key] = value
        i += 4
    return result


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_strings(entries: Mapping[str, str]) -> bytes:
    """UTF-16LE with BOM, one `"key" = "value";` per line, in the mapping's order."""
    body = "".join(f'"{_escape(k)}" = "{_escape(v)}";\n' for k, v in entries.items())
    return codecs.BOM_UTF16_LE + body.encode("utf-16-le")


def is_utf16_with_bom(data: bytes) -> bool:
    return data.startswith(codecs.BOM_UTF16_LE) or data.startswith(codecs.BOM_UTF16_BE)
