"""The PII guard of the suite (tests/pii_guard.py): what it flags in a log, what it lets through, and that a
leaking test fails while a redacting one passes."""

from __future__ import annotations

import logging
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from cards.numbers import format_card_number, last4, new_card_number
from push.results import token_hint
from tests.pii_guard import PiiLeak, mask, scan, sensitive

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytest run in a subprocess with only the guard loaded (the repo root importable)."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makeconftest('pytest_plugins = ["tests.pii_guard"]')
    return pytester


def kinds(text: str) -> list[str]:
    return [finding.kind for finding in scan(text)]


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("join coffee: welcome anna.petrova+wallet@example.com", "e-mail"),
        ("sms to +79001234567 failed", "phone"),
        ("phone=+4915112345678;", "phone"),
        ("issued card 7790123456789012 in coffee", "card number"),
        ("altText 7790 1234 5678 9012", "card number"),
        ("headers: {'Authorization': 'Bearer ya29.c.b0AXv0zTPkQp2r'}", "auth token"),
        ("register: ApplePass vFs1qU2cJZg9yTGBbCqnP0yzT1tZxX5f", "auth token"),
        ("key: -----BEGIN PRIVATE KEY-----\nMIIEvQ", "private key"),
        ("key: -----BEGIN RSA PRIVATE KEY-----", "private key"),
        ("assertion eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ3YWxsZXQifQ.c2ln", "jwt"),
    ],
)
def test_a_pattern_is_flagged_whether_registered_or_not(line: str, kind: str) -> None:
    assert kinds(line) == [kind]


def test_a_registered_token_name_and_key_are_flagged_whole() -> None:
    token = sensitive(uuid.uuid4().hex + uuid.uuid4().hex, "push token")
    sensitive("Ефросинья Тестовая", "name")
    key = sensitive("relay-key-" + uuid.uuid4().hex, "relay key")
    assert kinds(f"APNs push to {token} failed") == ["push token"]
    assert kinds("member Ефросинья Тестовая joined") == ["name"]
    assert kinds(f"X-Api-Key: {key}") == ["relay key"]
    # inside a longer token it is another value; a prefix hint is no leak
    assert kinds(f"id {token}ff") == []
    assert kinds(f"APNs push to {token_hint(token)} failed") == []


def test_a_registered_phone_is_flagged_as_its_digits_too() -> None:
    sensitive("+7 (901) 555-12-34", "phone")
    assert kinds("lookup 79015551234 done") == ["phone"]


def test_masked_and_ordinary_values_pass() -> None:
    number = new_card_number("7790")
    for line in [
        f"issued card *{last4(number)} in coffee",
        "store:    redis://***@127.0.0.1:6379/15?prefix=test:0f3c:",
        "POST http://127.0.0.1:41234/3/device/ab12… 200",
        "test_a_server_error_is_counted_in_metrics_and_a_client_error_logged_in_one_line PASSED",
        "took 0.30000000000000004 s, at 1733123456.123456789",
        "redis stream id 1733123456789-0, uuid 7f3a9c2e1b8d4a6f9e0c1d2b3a4f5e6d",
        "Bearer token missing",
        "missing Authorization: ApplePass …",
        "version 1.2.3+20241201",
        "tz +0300, port :8443",
        # a Google Wallet id is the 16+-digit issuer id, a dot and the serial or class
        "google wallet PATCH /loyaltyObject/3388000000001777.-e9kOGbj0iAo4bqLM0YkKw: not_found",
        "google wallet GET /loyaltyClass/3388000000001777.coffee timed out",
    ]:
        assert scan(line) == [], line


def test_the_report_masks_the_value() -> None:
    number = new_card_number("7790")
    [finding] = scan(f"card {format_card_number(number)} issued")
    described = finding.describe("server.log", 10)
    assert number not in described and format_card_number(number) not in described
    assert f"*{last4(number)}" in described and "line 10" in described
    token = "z" * 40
    assert token not in mask(token) and mask(token).startswith("zz")


def test_a_test_that_logs_pii_fails_and_one_that_redacts_passes(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        """
        import logging
        from cards.numbers import last4
        from tests.pii_guard import sensitive

        log = logging.getLogger("service.cards")
        NUMBER = "7790123456789012"

        def test_leaks_an_email():
            log.warning("welcome %s", "anna@example.com")

        def test_leaks_a_registered_token():
            token = sensitive("tok-" + "q" * 40, "app token")
            log.warning("app token %s", token)

        def test_redacts_the_card():
            log.warning("issued card *%s", last4(NUMBER))
        """
    )
    result = inner.runpytest_subprocess("-p", "no:cacheprovider", "-W", "default")
    result.assert_outcomes(passed=3, errors=2)
    result.stdout.fnmatch_lines(["*PiiLeak*", "*e-mail an******om (16 chars) in a log record of `service.cards`*"])
    result.stdout.fnmatch_lines(["*app token to******qq (44 chars)*"])
    assert "anna@example.com" not in result.stdout.str()
    assert "q" * 40 not in result.stdout.str()


def test_a_subprocess_log_file_is_scanned_at_the_end_of_the_test(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        """
        import subprocess, sys

        def test_server_logs_a_phone(tmp_path):
            with open(tmp_path / "server.log", "ab") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-c", "print('sms to +79001234567 sent')"], stdout=out, stderr=subprocess.STDOUT
                )
            proc.wait(10)
        """
    )
    result = inner.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*phone +7******67 (12 chars) in the log of `-c print*server.log*line 1*"])


def test_the_guard_sees_records_and_raises_pii_leak() -> None:
    # the plugin is loaded in this very session: its handler is on the root logger
    root = logging.getLogger()
    assert any(type(h).__name__ == "_RecordCollector" for h in root.handlers)
    assert issubclass(PiiLeak, AssertionError)
    assert subprocess.Popen.__init__.__name__ == "_watching_popen_init"
    assert Path(sys.executable).exists()
