"""PII guard: a pytest plugin (loaded for the whole suite by tests/conftest.py) that fails a test whose logs
leak personal data or secrets (SPEC: card numbers only as their last 4 digits; no names, phones, e-mails or
push tokens; API keys, the ledger secret, auth tokens, app tokens and private keys never in logs).

After every test (at the end of its teardown, so function-, module- and session-scoped fixtures that were
torn down with it are included) it scans:

- the log records the test process emitted during the test's setup, call and teardown: what pytest's
  logging capture (caplog) sees, collected by a handler of ours on the root logger;
- the new output of every log file a subprocess writes to: `subprocess.Popen` is wrapped so that a child
  whose stdout or stderr is a regular file (LiveServer, WorkerProcess, `cli serve` in the tests) has that
  file watched; each test scans what was appended since the previous test, so a module-scoped server's
  lines are charged to the test during which they were written, and its shutdown lines to the test whose
  teardown stopped it.

What counts as a leak:

- any value registered with `sensitive(value, kind)` (the shared helpers register the members, cards,
  keys and tokens they make), matched whole (not inside a longer word or token);
- patterns, registered or not: e-mail addresses, E.164-looking phone numbers (+ and 10-15 digits),
  full card numbers (a run of 16-19 digits, or four-digit groups as `format_card_number` writes them),
  PEM private key blocks, JWTs and credentials after `Bearer` / PassKit `Authorization` words.

Masked forms pass: `*1234` (cards.numbers.last4), `a1b2c3…` (push.results.token_hint), `***@host`.
A leak fails the test at teardown with the kind, where (logger or log file and line) and the value masked.
Records of the tests' own fakes (loggers under `tests.`) are not the service's logs and are skipped.
"""

from __future__ import annotations

import bisect
import logging
import os
import re
import subprocess
import threading
import time
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

# -- the registry ------------------------------------------------------------------------------------------

_registry: dict[str, str] = {}  # value -> kind
_registry_lock = threading.Lock()
_MIN_LENGTH = {"name": 3}  # names are matched as whole words; anything else must be at least 8 characters
_DEFAULT_MIN_LENGTH = 8


def sensitive(value: Any, kind: str) -> Any:
    """Register `value` (a member's name, a token, a key, ...) as something no log may hold; returns it.

    Values too short to tell apart from ordinary text are ignored (names below 3 characters, the
    rest below 8). A phone number also registers its digits alone."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if len(text) < _MIN_LENGTH.get(kind, _DEFAULT_MIN_LENGTH):
        return value
    with _registry_lock:
        _registry.setdefault(text, kind)
        if kind == "phone":
            digits = re.sub(r"\D", "", text)
            if len(digits) >= 10 and digits != text:
                _registry.setdefault(digits, kind)
    return value


def sensitive_card(card: Any) -> Any:
    """Register what a `cards.model.Card` holds that logs must not: its number, auth token and member."""
    sensitive(getattr(card, "number", None), "card number")
    sensitive(getattr(card, "auth_token", None), "auth token")
    member = getattr(card, "member", None)
    sensitive(getattr(member, "name", None), "name")
    sensitive(getattr(member, "phone", None), "phone")
    sensitive(getattr(member, "email", None), "e-mail")
    return card


def registered() -> dict[str, str]:
    with _registry_lock:
        return dict(_registry)


# -- scanning ----------------------------------------------------------------------------------------------

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("private key", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")),
    (
        "auth token",
        re.compile(
            r"\b(?:Bearer|ApplePass|AndroidPass|AttidoPass|WalletUnionPass|WalletUnionHMSPass|TelegramPass)"
            r"\s+([A-Za-z0-9._~+/-]{12,}=*)"
        ),
    ),
    (
        "e-mail",
        re.compile(r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"),
    ),
    ("phone", re.compile(r"(?<![\w+])\+\d{10,15}(?![\d])")),
    # not a float's fraction (0.30000000000000004), a dotted number, nor a Google issuer id (`3388….card-0001`)
    ("card number", re.compile(r"(?<![\w.])(?:\d{16,19}|\d{4}(?: \d{4}){3,4})(?!\w|\.[\w-])")),
)


@dataclass(frozen=True)
class Finding:
    kind: str
    value: str
    line_no: int  # 1-based, within the scanned text
    line: str
    start: int = 0  # where in the scanned text

    def describe(self, where: str, first_line: int | None = 1) -> str:
        """`kind masked-value in where line N: excerpt`; `first_line` is the number of the text's first line
        in its file (None: no line number, for a single record)."""
        at = "" if first_line is None else f" line {first_line + self.line_no - 1}"
        return f"{self.kind} {mask(self.value)} in {where}{at}: {_excerpt(self.line, self.value)}"


def mask(value: str) -> str:
    """Enough of `value` to recognize it, never all of it: a card's last 4, a token's first 2 and last 2."""
    if re.fullmatch(r"[\d ]{16,}", value):
        return "*" + value.replace(" ", "")[-4:]
    if len(value) < 8:
        return "*" * len(value)
    keep = 2 if len(value) >= 12 else 1
    return f"{value[:keep]}{'*' * 6}{value[-keep:]} ({len(value)} chars)"


def _excerpt(line: str, value: str, width: int = 160) -> str:
    at = max(line.find(value), 0)
    start = max(at - width // 2, 0)
    text = line[start : start + width].replace(value, mask(value))
    # whatever else of the value the window cut
    if value[:8] in text:
        text = text.replace(value[:8], "********")
    return ("…" if start else "") + text + ("…" if start + width < len(line) else "")


def _bounded(text: str, start: int, end: int) -> bool:
    """The match text[start:end] is not part of a longer word, number or token."""
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    return not (before.isalnum() or before == "_") and not (after.isalnum() or after == "_")


def scan(text: str, extra: dict[str, str] | None = None) -> list[Finding]:
    """The leaks in `text`: registered values (and `extra`, value -> kind) and the patterns, one per spot."""
    values = registered()
    if extra:
        values.update(extra)
    spans: list[tuple[int, int, str, str]] = []
    for value, kind in values.items():
        if value not in text:
            continue
        for match in re.finditer(re.escape(value), text):
            if _bounded(text, match.start(), match.end()):
                spans.append((match.start(), match.end(), kind, value))
    for kind, pattern in _PATTERNS:
        for match in pattern.finditer(text):
            group = 1 if pattern.groups else 0
            spans.append((match.start(group), match.end(group), kind, match.group(group)))
    findings: list[Finding] = []
    taken: list[tuple[int, int]] = []
    for start, end, kind, value in sorted(spans, key=lambda s: (s[0], -(s[1] - s[0]))):
        if any(start < t_end and t_start < end for t_start, t_end in taken):
            continue  # the same spot found by the registry and a pattern: report it once
        taken.append((start, end))
        line_start = text.rfind("\n", 0, start) + 1
        line_end = text.find("\n", end)
        line = text[line_start : line_end if line_end != -1 else len(text)]
        findings.append(Finding(kind, value, text.count("\n", 0, start) + 1, line, start))
    return findings


# -- the test process's log records ------------------------------------------------------------------------


class _RecordCollector(logging.Handler):
    """Keeps what the root logger's handlers are given (as pytest's LogCaptureHandler is) until the test ends."""

    def __init__(self) -> None:
        super().__init__(level=0)
        self.lines: list[str] = []
        self._formatter = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "tests" or record.name.startswith("tests."):
            return
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + self._formatter.formatException(record.exc_info)
        except Exception:  # a broken record is logging's problem, not ours
            return
        self.lines.append(f"{record.name} {record.levelname}: {message}")

    def take(self) -> list[str]:
        with self.lock or threading.Lock():
            lines, self.lines = self.lines, []
        return lines


# -- the subprocesses' log files ---------------------------------------------------------------------------


@dataclass
class _Watched:
    path: Path
    label: str
    started_by: str
    offset: int = 0
    line_no: int = 0
    procs: list[subprocess.Popen] = field(default_factory=list)

    def read_new(self) -> tuple[int, str]:
        """(line number of the first new line, the new complete lines); a partial last line waits for its end
        unless every process writing the file has exited."""
        try:
            size = os.stat(self.path).st_size
        except OSError:
            return self.line_no + 1, ""
        if size < self.offset:  # truncated (opened again with "wb"): read it from the start
            self.offset = self.line_no = 0
        if size == self.offset:
            return self.line_no + 1, ""
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read(size - self.offset)
        if not all(proc.returncode is not None for proc in self.procs):
            cut = data.rfind(b"\n") + 1
            data = data[:cut]
        first = self.line_no + 1
        self.offset += len(data)
        self.line_no += data.count(b"\n")
        return first, data.decode("utf-8", errors="replace")

    def finished(self) -> bool:
        """Every writer has exited and all it wrote was read."""
        try:
            size = os.stat(self.path).st_size
        except OSError:
            return True
        return all(proc.returncode is not None for proc in self.procs) and size == self.offset


_watched: dict[Path, _Watched] = {}
_read_up_to: dict[Path, tuple[int, int]] = {}  # finished files: (offset, line_no), should a new child append
_watched_lock = threading.Lock()
_current_test = ["(collection)"]


def _file_of(stream: object) -> Path | None:
    name = getattr(stream, "name", None)
    if isinstance(name, str) and os.path.isfile(name):
        return Path(name).resolve()
    return None


def _label(args: object) -> str:
    words = [str(a) for a in args] if isinstance(args, list | tuple) else str(args).split()
    words = [w for w in words if not w.endswith(("python", "python3", "python3.11")) and w != "-m"]
    return " ".join(words[:2]) or "subprocess"


def watch(path: Path, label: str, proc: subprocess.Popen | None = None) -> None:
    """Scan the log file at `path` after each test from now on (called for Popen children writing to files)."""
    path = Path(path).resolve()
    with _watched_lock:
        watched = _watched.get(path)
        if watched is None:
            offset, line_no = _read_up_to.pop(path, (0, 0))
            watched = _watched[path] = _Watched(path, label, _current_test[0], offset, line_no)
        if proc is not None:
            watched.procs.append(proc)


_original_popen_init = subprocess.Popen.__init__


def _is_pytest(args: object) -> bool:
    """pytester's inner runs write their reports to files too: those are a test's output, not a service's log."""
    words = [str(a) for a in args] if isinstance(args, list | tuple) else str(args).split()
    return any(w in ("pytest", "-mpytest") or w.endswith(("/pytest", "/py.test")) for w in words)


def _watching_popen_init(self: subprocess.Popen, *args: Any, **kwargs: Any) -> None:
    _original_popen_init(self, *args, **kwargs)
    command = args[0] if args else kwargs.get("args", "")
    if _is_pytest(command):
        return
    for stream in {id(s): s for s in (kwargs.get("stdout"), kwargs.get("stderr"))}.values():
        path = _file_of(stream)
        if path is not None:
            watch(path, _label(command), self)


def _subprocess_findings() -> list[str]:
    found = []
    with _watched_lock:
        watched = list(_watched.values())
    for item in watched:
        first, text = item.read_new()
        if not text:
            continue
        where = f"the log of `{item.label}` ({item.path.name}, started by {item.started_by})"
        for finding in scan(text):
            found.append(finding.describe(where, first))
    with _watched_lock:  # let go of exited children (and their Popen objects)
        for item in watched:
            if item.finished() and _watched.get(item.path) is item:
                del _watched[item.path]
                _read_up_to[item.path] = (item.offset, item.line_no)
    return found


# -- the hooks ---------------------------------------------------------------------------------------------

_collector = _RecordCollector()


def pytest_configure(config: pytest.Config) -> None:
    subprocess.Popen.__init__ = _watching_popen_init  # type: ignore[method-assign]
    logging.getLogger().addHandler(_collector)


def pytest_unconfigure(config: pytest.Config) -> None:
    subprocess.Popen.__init__ = _original_popen_init  # type: ignore[method-assign]
    logging.getLogger().removeHandler(_collector)


def _ensure_collector() -> None:
    # a test that reconfigures logging (tests/unit/test_logging.py) drops our handler for its duration
    root = logging.getLogger()
    if _collector not in root.handlers:
        root.addHandler(_collector)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    _current_test[0] = item.nodeid
    _ensure_collector()
    _collector.take()  # anything logged between tests belongs to no test
    return (yield)


def leaks_in_records(lines: Iterable[str]) -> list[str]:
    """The leaks in the test's log records (`logger LEVEL: message` each), scanned as one text."""
    records = list(lines)
    if not records:
        return []
    starts, at = [], 0
    for record in records:
        starts.append(at)
        at += len(record) + 1
    found = []
    for finding in scan("\n".join(records)):
        logger = records[bisect.bisect_right(starts, finding.start) - 1].split(" ", 1)[0]
        found.append(finding.describe(f"a log record of `{logger}`", None))
    return found


_spent = [0.0, 0]  # seconds scanning, tests scanned: `pytest -vv` reports them (the guard's overhead)


def _leaks() -> list[str]:
    started = time.perf_counter()
    leaks = leaks_in_records(_collector.take()) + _subprocess_findings()
    _spent[0] += time.perf_counter() - started
    _spent[1] += 1
    return leaks


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    try:
        result = yield
    except BaseException as exc:
        leaks = _leaks()
        if leaks:
            exc.add_note(_report(leaks))
        raise
    leaks = _leaks()
    _ensure_collector()
    if leaks:
        raise PiiLeak(_report(leaks))
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failing test's report shows its captured logs and output: mask the leaks there too, or the report
    would print in full what the guard masks."""
    report: pytest.TestReport = yield
    if report.failed:
        report.sections = [(title, redact(content)) for title, content in report.sections]
    return report


def redact(text: str) -> str:
    """`text` with every leak `scan` finds replaced by its mask."""
    for finding in sorted(scan(text), key=lambda f: -len(f.value)):
        text = text.replace(finding.value, mask(finding.value))
    return text


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if config.get_verbosity() > 0:
        with _watched_lock:
            files = len(_watched) + len(_read_up_to)
        terminalreporter.write_line(
            f"pii guard: {_spent[1]} tests, {files} subprocess log files, {_spent[0]:.2f}s scanning, "
            f"{len(registered())} values registered"
        )


class PiiLeak(AssertionError):
    """Logs held personal data or a secret (SPEC: logs never hold PII)."""


def _report(leaks: list[str], limit: int = 20) -> str:
    shown = leaks[:limit]
    more = f"\n  … and {len(leaks) - limit} more" if len(leaks) > limit else ""
    return "PII or a secret in the logs (tests/pii_guard.py):\n  " + "\n  ".join(shown) + more
