from __future__ import annotations

import pytest

from cards.phones import PhoneError, normalize_phone


@pytest.mark.parametrize(
    "text",
    ["+79001234567", "+7 (900) 123-45-67", "8 900 123 45 67", "89001234567", " 9001234567 "],
)
def test_russian_forms_are_one_number(text: str) -> None:
    assert normalize_phone(text) == "+79001234567"


def test_other_regions() -> None:
    assert normalize_phone("030 123456", "DE") == "+4930123456"
    assert normalize_phone("+44 20 7946 0958") == "+442079460958"


@pytest.mark.parametrize("text", ["", "   ", "hello", "123", "+7 900", "9" * 50, "+0 000 000 0000"])
def test_refused(text: str) -> None:
    with pytest.raises(PhoneError):
        normalize_phone(text)
