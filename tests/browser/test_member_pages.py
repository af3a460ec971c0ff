"""The member pages in Chromium: joining on an iPhone and on an Android phone ends on the card page
with that phone's wallet buttons; the join form's errors (bad phone, no consent) and the same phone
again; the card page's QR code on a desktop. Each page is screenshotted and checked with axe-core."""

from __future__ import annotations

import re
import uuid

from playwright.sync_api import Page, expect

from tests.browser.conftest import axe
from tests.web.conftest import LiveServer


def fresh_phone() -> tuple[str, str]:
    digits = f"{uuid.uuid4().int % 10_000_000:07d}"
    return f"8 916 {digits[:3]}-{digits[3:5]}-{digits[5:]}", f"+7916{digits}"


def fill_join(page: Page, server: LiveServer, *, name: str = "Анна", phone: str, terms: bool = True) -> None:
    page.goto(server.base + "/join/coffee")
    page.get_by_label("Имя", exact=True).fill(name)
    page.get_by_label("Телефон", exact=True).fill(phone)
    if terms:
        page.get_by_label("Я принимаю условия программы").check()


def submit(page: Page) -> None:
    page.locator("#submit").click()
    page.wait_for_load_state("domcontentloaded")


def test_join_on_an_iphone_ends_with_apple_wallet(live_server: LiveServer, phone, shot) -> None:
    page = phone("iphone")
    page.goto(live_server.base + "/join/coffee")
    expect(page.locator("h1")).to_have_text("Вступить в программу")
    shot(page, "join-form-iphone")
    assert axe(page) == []
    typed, _ = fresh_phone()
    fill_join(page, live_server, phone=typed)
    page.get_by_label("Присылать SMS").check()
    submit(page)
    expect(page).to_have_url(re.compile(r"/c/[A-Za-z0-9_-]+\?exp=\d+&sig="))
    expect(page.locator("#balance")).to_have_text("0")
    expect(page.locator("#apple")).to_be_visible()
    assert page.locator("#apple img").get_attribute("alt") == "Добавить в Apple Wallet"
    assert page.locator("#apple img").evaluate("img => img.naturalWidth") > 0  # the badge loaded
    for absent in ("#google", "#pkpass", "#apps", "#qr"):
        assert page.locator(absent).count() == 0, absent
    shot(page, "card-iphone")
    assert axe(page) == []


def test_join_on_android_ends_with_google_wallet_and_the_pass_apps(live_server: LiveServer, phone, shot) -> None:
    page = phone("android")
    typed, _ = fresh_phone()
    fill_join(page, live_server, phone=typed)
    shot(page, "join-form-android-filled")
    submit(page)
    expect(page).to_have_url(re.compile(r"/c/"))
    assert page.locator("#apple").count() == 0
    expect(page.locator("#google")).to_be_visible()  # dev runs Google Wallet with its generated issuer
    assert page.locator("#google img").get_attribute("alt") == "Сохранить в Google Кошелёк"
    expect(page.locator("#pkpass")).to_be_visible()
    apps = page.locator("#apps a.app")
    assert apps.count() >= 4
    expect(page.locator("#app-pass2u")).to_have_text("Pass2U Wallet")
    assert page.locator("#qr").count() == 0
    shot(page, "card-android")
    assert axe(page) == []


def test_join_errors_and_the_same_phone_again(live_server: LiveServer, phone, shot) -> None:
    page = phone("iphone")
    # a phone that is no phone
    fill_join(page, live_server, phone="12345")
    submit(page)
    error = page.locator("#phone-error")
    expect(error).to_contain_text("Это не похоже на номер телефона")
    expect(page.locator("#phone")).to_have_value("12345")
    expect(page.locator("#name")).to_have_value("Анна")
    assert page.locator("#phone").get_attribute("aria-invalid") == "true"
    assert "phone-error" in (page.locator("#phone").get_attribute("aria-describedby") or "")
    expect(page.locator("#errors")).to_be_visible()
    shot(page, "join-bad-phone")
    assert axe(page) == []

    # no consent to the terms
    typed, e164 = fresh_phone()
    page.locator("#phone").fill(typed)
    page.locator("#terms").uncheck()
    submit(page)
    expect(page.locator("#terms-error")).to_contain_text("Без согласия с условиями")
    expect(page.locator("#phone")).to_have_value(typed)
    shot(page, "join-no-consent")
    assert axe(page) == []

    # corrected: the card
    page.locator("#terms").check()
    submit(page)
    expect(page).to_have_url(re.compile(r"/c/"))
    first = page.url.split("?")[0]

    # the same phone again, written another way, in another browser: the same card
    again = phone("android")
    fill_join(again, live_server, name="Аня", phone=e164)
    submit(again)
    expect(again).to_have_url(re.compile(r"/c/"))
    assert again.url.split("?")[0] == first
    shot(again, "card-same-phone")


def test_card_page_on_a_desktop_shows_a_qr_code(live_server: LiveServer, phone, shot) -> None:
    issued = live_server.issue("acc-" + uuid.uuid4().hex[:12])
    page = phone("desktop")
    page.goto(issued["links"]["page"])
    qr = page.locator("#qr")
    expect(qr).to_be_visible()
    assert (qr.get_attribute("src") or "").startswith("data:image/svg+xml;base64,")
    assert qr.evaluate("img => img.naturalWidth") > 0  # the SVG decoded and drew
    expect(page.locator("#apple")).to_be_visible()
    expect(page.locator("#google")).to_be_visible()
    assert page.locator("#apps a.app").count() >= 4
    shot(page, "card-desktop-qr")
    assert axe(page) == []


def test_activation_of_a_printed_card(live_server: LiveServer, phone, shot) -> None:
    from tests.web.test_activate import printed

    page = phone("android")
    page.goto(live_server.base + "/activate/coffee")
    shot(page, "activate-form")
    assert axe(page) == []
    number = printed()
    page.get_by_label("Номер карты", exact=True).fill("4000 0000 0000 0002")
    typed, _ = fresh_phone()
    page.get_by_label("Телефон", exact=True).fill(typed)
    page.get_by_label("Я принимаю условия программы").check()
    submit(page)
    expect(page.locator("#number-error")).to_contain_text("не из нашей программы")
    shot(page, "activate-outside")
    assert axe(page) == []
    page.locator("#number").fill(f"{number[:4]} {number[4:8]} {number[8:12]} {number[12:]}")
    submit(page)
    expect(page).to_have_url(re.compile(r"/c/"))
    expect(page.locator("#number")).to_have_text("•••• " + number[-4:])


def test_every_tier_reads_well(live_server: LiveServer, phone, shot) -> None:
    issued = live_server.issue("acc-" + uuid.uuid4().hex[:12])
    page = phone("iphone")
    for version, (balance, tier) in enumerate([(12_000, "gold"), (31_000, "platinum")], start=1):
        event = {"id": uuid.uuid4().hex, "card": issued["card"], "version": version, "balance": balance, "tier": tier}
        event["expiring"] = {"points": 120, "date": "2027-03-01"}
        event["message"] = "Покупка: +120"
        assert live_server.post_ledger([event]).status_code == 202
        page.goto(issued["links"]["page"])
        expect(page.locator("#card")).to_have_class(re.compile(f"tier-{tier}"))
        expect(page.locator("#expiring")).to_be_visible()
        shot(page, f"card-{tier}")
        assert axe(page) == []
