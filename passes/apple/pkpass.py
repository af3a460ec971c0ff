"""Building signed `.pkpass` files, cached by content.

Per pass only three things are new: pass.json, manifest.json and the signature. The
template's files (images, pass.strings) are constant per program, so their SHA-1s and
even their zip entries are prepared once (`_TemplatePack`); the zip is written by hand
with the constant entries first, which keeps their offsets constant too. The bytes of a
signed pass depend only on its content, so they are cached under a hash of pass.json +
template fingerprint: serving an unchanged pass never signs again. Only the per-pass
parts are cached; the template's part is shared, so an entry is ~6 KB, not ~20 KB.
"""

from __future__ import annotations

import hashlib
import json
import struct
import threading
import zlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from cards.model import Card
from passes.apple.pass_json import DEFAULT_DISTANCE_M, Location, build_pass_json, web_service_url
from passes.apple.signing import Signer
from passes.apple.voucher_json import build_voucher_json
from passes.programs import Program
from store.port import Voucher

CONTENT_TYPE = "application/vnd.apple.pkpass"

# Fixed DOS timestamp (1980-01-01 00:00) so equal content gives equal bytes.
_DOS_TIME, _DOS_DATE = 0, (0 << 9) | (1 << 5) | 1
_VERSION = 20
_MADE_BY = (3 << 8) | _VERSION  # "Unix", so unzip applies the mode in _EXT_ATTR
_EXT_ATTR = 0o100644 << 16
_FLAG_UTF8 = 0x0800
_STORED, _DEFLATED = 0, 8


def dump_json(value: Any) -> bytes:
    """Compact UTF-8 JSON in insertion order (deterministic: pass.json is built in a fixed order).

    orjson takes ~1 us where json.dumps takes ~16 us on a pass.json; both give the same bytes.
    """
    return orjson.dumps(value)


class UnknownProgramError(LookupError):
    """The card's program has no loaded template."""


@dataclass(frozen=True)
class RenderedPass:
    data: bytes
    digest: str  # content hash (hex); equal for equal pass content, usable as an ETag


@dataclass(frozen=True)
class _Entry:
    local: bytes  # local header + data
    central_tail: bytes  # central directory header without its offset + name (see _central)


def _deflate_zlib(data: bytes) -> bytes:
    # Level 1 with a 4 KB window and memLevel 6: for a few-KB JSON the same size as the
    # defaults, without allocating ~260 KB of state per call.
    c = zlib.compressobj(1, zlib.DEFLATED, -12, 6)
    return c.compress(data) + c.flush()


try:  # ISA-L level 0: ~2.5 us instead of zlib's ~11 us on a 2 KB pass.json (~4 % of a pass)
    from isal import isal_zlib as _isal

    def _deflate(data: bytes) -> bytes:
        return _isal.compress(data, 0, -15)

except ImportError:  # pragma: no cover - platforms without an isal wheel
    _deflate = _deflate_zlib


def _entry(name: str, data: bytes, compress: bool) -> _Entry:
    name_b = name.encode("utf-8")
    body, method = (_deflate(data), _DEFLATED) if compress else (data, _STORED)
    crc = zlib.crc32(data)
    local = (
        struct.pack(
            "<IHHHHHIIIHH",
            0x04034B50,
            _VERSION,
            _FLAG_UTF8,
            method,
            _DOS_TIME,
            _DOS_DATE,
            crc,
            len(body),
            len(data),
            len(name_b),
            0,
        )
        + name_b
        + body
    )
    central_head = struct.pack(
        "<IHHHHHHIIIHHHHHI",
        0x02014B50,
        _MADE_BY,
        _VERSION,
        _FLAG_UTF8,
        method,
        _DOS_TIME,
        _DOS_DATE,
        crc,
        len(body),
        len(data),
        len(name_b),
        0,
        0,
        0,
        0,
        _EXT_ATTR,
    )
    return _Entry(local, central_head + b"\0\0\0\0" + name_b)  # offset patched in _central


def _central(entry: _Entry, offset: int) -> bytes:
    tail = entry.central_tail
    head_len = 42  # bytes before the 4-byte offset field in a central directory header
    return tail[:head_len] + struct.pack("<I", offset) + tail[head_len + 4 :]


class _TemplatePack:
    """Everything about a template's constant files that a pass needs, computed once."""

    def __init__(self, template: Program) -> None:
        self.template = template
        offset = 0
        locals_, centrals = [], []
        for f in template.files:
            # PNG is already compressed; deflating it again costs time and gains nothing.
            e = _entry(f.name, f.data, compress=not f.name.endswith(".png"))
            locals_.append(e.local)
            centrals.append(_central(e, offset))
            offset += len(e.local)
        self.local_blob = b"".join(locals_)
        self.central_blob = b"".join(centrals)
        self.count = len(template.files)
        # manifest.json = {<template files>, "pass.json": <sha1>}: only the last value varies.
        static = json.dumps({f.name: f.sha1 for f in template.files}, separators=(",", ":"))
        self.manifest_prefix = (static[:-1] + ',"pass.json":"').encode()
        self.fingerprint = template.fingerprint.encode()


def signed_parts(pack: _TemplatePack, pass_json: bytes, manifest: bytes, signature: bytes) -> tuple[bytes, bytes]:
    """The per-pass zip pieces: (local entries after the template's, central entries + end record).

    A whole pass = pack.local_blob + first + pack.central_blob + second. Only these ~5 KB
    are cached; the ~15 KB of template entries are shared by every pass of the program,
    which also keeps each fresh pass from writing 20 KB into cold memory.
    """
    entries = (
        _entry("pass.json", pass_json, compress=True),
        # manifest.json is stored: it is SHA-1 hex (deflates to ~55 %), and deflating it
        # would cost ~10 us per pass for ~300 bytes.
        _entry("manifest.json", manifest, compress=False),
        _entry("signature", signature, compress=False),
    )
    local = b"".join(e.local for e in entries)
    offset = len(pack.local_blob)
    central = []
    for e in entries:
        central.append(_central(e, offset))
        offset += len(e.local)
    count = pack.count + len(entries)
    cd_size = len(pack.central_blob) + sum(len(c) for c in central)
    central.append(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, cd_size, offset, 0))
    return local, b"".join(central)


def assemble_zip(pack: _TemplatePack, parts: tuple[bytes, bytes]) -> bytes:
    return b"".join((pack.local_blob, parts[0], pack.central_blob, parts[1]))


class _LRU:
    """Signed per-pass parts by content hash, bounded by count and bytes; thread-safe
    (renders may run in a thread pool)."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._items: OrderedDict[str, tuple[bytes, bytes]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    @staticmethod
    def _size(item: tuple[bytes, bytes]) -> int:
        return len(item[0]) + len(item[1])

    def get(self, key: str) -> tuple[bytes, bytes] | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item

    def put(self, key: str, item: tuple[bytes, bytes]) -> None:
        size = self._size(item)
        if self.max_entries <= 0 or size > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= self._size(old)
            self._items[key] = item
            self._bytes += size
            while len(self._items) > self.max_entries or self._bytes > self.max_bytes:
                _, evicted = self._items.popitem(last=False)
                self._bytes -= self._size(evicted)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def bytes(self) -> int:
        return self._bytes


class PassFactory:
    """Renders signed passes for cards of any loaded program."""

    def __init__(
        self,
        templates: Mapping[str, Program],
        signer: Signer,
        *,
        pass_type_id: str,
        team_id: str,
        public_url: str,
        cache_entries: int = 4096,
        cache_bytes: int = 32 * 1024 * 1024,  # ~6 KB per pass (template files are shared)
        default_distance_m: int = DEFAULT_DISTANCE_M,
    ) -> None:
        self.default_distance_m = default_distance_m
        self.templates = dict(templates)
        self.signer = signer
        self.pass_type_id = pass_type_id
        self.team_id = team_id
        self.web_service_url = web_service_url(public_url)
        self._packs = {name: _TemplatePack(t) for name, t in self.templates.items()}
        self.cache = _LRU(cache_entries, cache_bytes)

    def template_for(self, card: Card) -> Program:
        try:
            return self.templates[card.program]
        except KeyError:
            raise UnknownProgramError(f"no template for program {card.program!r}") from None

    def pass_json(self, card: Card, locations: Sequence[Location] | None = None) -> dict[str, Any]:
        return build_pass_json(
            self.template_for(card),
            card,
            pass_type_id=self.pass_type_id,
            team_id=self.team_id,
            web_service_url=self.web_service_url,
            locations=locations,
            default_distance_m=self.default_distance_m,
        )

    def _content(self, card: Card, locations: Sequence[Location] | None) -> tuple[_TemplatePack, bytes, str]:
        pack = self._packs.get(card.program)
        if pack is None:
            raise UnknownProgramError(f"no template for program {card.program!r}")
        pass_json = dump_json(
            build_pass_json(
                pack.template,
                card,
                pass_type_id=self.pass_type_id,
                team_id=self.team_id,
                web_service_url=self.web_service_url,
                locations=locations,
                default_distance_m=self.default_distance_m,
            )
        )
        return pack, pass_json, hashlib.sha256(pack.fingerprint + b"\0" + pass_json).hexdigest()

    def cached(self, card: Card, locations: Sequence[Location] | None = None) -> RenderedPass | None:
        """The pass if its signed bytes are cached, else None: cheap enough for an event loop,
        so only a real signature needs a worker thread."""
        pack, _, digest = self._content(card, locations)
        parts = self.cache.get(digest)
        return None if parts is None else RenderedPass(assemble_zip(pack, parts), digest)

    def render(self, card: Card, locations: Sequence[Location] | None = None) -> RenderedPass:
        """The signed .pkpass bytes of the card's current state (from cache when unchanged)."""
        pack, pass_json, digest = self._content(card, locations)
        return self._signed(pack, pass_json, digest)

    def _signed(self, pack: _TemplatePack, pass_json: bytes, digest: str) -> RenderedPass:
        parts = self.cache.get(digest)
        if parts is None:
            manifest = pack.manifest_prefix + hashlib.sha1(pass_json).hexdigest().encode() + b'"}'
            parts = signed_parts(pack, pass_json, manifest, self.signer.sign(manifest))
            self.cache.put(digest, parts)
        return RenderedPass(assemble_zip(pack, parts), digest)

    # -- vouchers (gift certificates, offers): the card's program's template, the same cache ----------
    def voucher_json(self, voucher: Voucher) -> dict[str, Any]:
        pack = self._packs.get(voucher.program)
        if pack is None:
            raise UnknownProgramError(f"no template for program {voucher.program!r}")
        return build_voucher_json(
            pack.template,
            voucher,
            pass_type_id=self.pass_type_id,
            team_id=self.team_id,
            web_service_url=self.web_service_url,
        )

    def _voucher_content(self, voucher: Voucher) -> tuple[_TemplatePack, bytes, str]:
        pass_json = dump_json(self.voucher_json(voucher))
        pack = self._packs[voucher.program]
        return pack, pass_json, hashlib.sha256(pack.fingerprint + b"\0" + pass_json).hexdigest()

    def cached_voucher(self, voucher: Voucher) -> RenderedPass | None:
        """As `cached`, for a voucher."""
        pack, _, digest = self._voucher_content(voucher)
        parts = self.cache.get(digest)
        return None if parts is None else RenderedPass(assemble_zip(pack, parts), digest)

    def render_voucher(self, voucher: Voucher) -> RenderedPass:
        """The signed .pkpass of the voucher's current state (from cache when unchanged)."""
        return self._signed(*self._voucher_content(voucher))
