"""The card page as a template (web/pages/card.py), through the real service on both stores: what it
shows of the card, its tier colours without inline style, the QR code on a desktop, the badges
(shipped stand-ins or an operator's folder), and the pass preview image route."""

from __future__ import annotations

import base64
import io
import re
import uuid
from html import unescape
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from PIL import Image

from passes.preview import SIZE
from passes.programs import load_programs
from tests.unit.test_wallet_apps import DESKTOP_CHROME_UA, IPHONE_SAFARI_UA
from tests.web.conftest import ROOT, LiveServer
from tests.web.test_card_page_apps import ANDROID_CHROME_UA, anchors, no_scripts, page_for
from web.pages.card import BADGES

GOLD_RU = load_programs(ROOT / "pass_templates")["coffee"].tier("gold").name("ru")  # type: ignore[union-attr]
_QR = re.compile(r'<img class="qr" id="qr" src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"')


@pytest.fixture(scope="module")
def gold(shared_server: LiveServer) -> dict:
    """A gold card with expiring points, a last operation and a marketing-free notice-less state."""
    issued = shared_server.issue("acc-" + uuid.uuid4().hex[:12])
    event = {
        "id": uuid.uuid4().hex,
        "card": issued["card"],
        "version": 1,
        "balance": 12500,
        "tier": "gold",
        "expiring": {"points": 300, "date": "2027-01-31"},
        "message": "Покупка в «Кофе Поинт»: +125",
    }
    answer = shared_server.post_ledger([event])
    assert answer.status_code == 202, answer.text
    return issued


def text_of(page: str, ident: str) -> str:
    found = re.search(rf'id="{ident}">([^<]*)<', page)
    assert found is not None, ident
    return unescape(found.group(1))


def test_the_page_shows_the_card(shared_server: LiveServer, gold: dict) -> None:
    page = page_for(shared_server, gold, IPHONE_SAFARI_UA)
    assert text_of(page, "balance") == "12\u00a0500"
    assert text_of(page, "tier") == GOLD_RU
    assert 'class="card tier-gold"' in page
    assert text_of(page, "to-next").startswith("До уровня «")
    assert "17\u00a0501" in text_of(page, "to-next")  # 30 001 - 12 500
    assert text_of(page, "expiring") == "300 баллов сгорят 2027-01-31"
    assert text_of(page, "last-operation") == "Покупка в «Кофе Поинт»: +125"
    assert text_of(page, "number").endswith(gold["card"][-4:])
    assert gold["card"] not in page  # the full number is the pass's, not the page's
    assert 'id="notice"' not in page
    # the reserved block for vouchers is there, empty
    assert "VOUCHERS" not in page  # a template comment, never sent
    no_scripts(page)
    assert ' style="' not in page and "<style" not in page


def test_english_by_accept_language(shared_server: LiveServer, gold: dict) -> None:
    client = shared_server.client(**{"User-Agent": IPHONE_SAFARI_UA, "Accept-Language": "en-US,en;q=0.8"})
    page = client.get(gold["links"]["page"])
    assert page.status_code == 200 and page.headers["content-language"] == "en"
    assert text_of(page.text, "balance") == "12,500"
    assert anchors(page.text)["apple"][1] == "Add to Apple Wallet"
    assert "accept-language" in page.headers["vary"].lower()


def test_headers_of_a_page(shared_server: LiveServer, gold: dict) -> None:
    answer = shared_server.client(**{"User-Agent": IPHONE_SAFARI_UA}).get(gold["links"]["page"])
    csp = answer.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "img-src 'self' data:" in csp
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["referrer-policy"] == "no-referrer"


def test_the_tier_colours_come_from_a_stylesheet(shared_server: LiveServer) -> None:
    css = shared_server.client().get("/pages/coffee/tiers.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert ".tier-gold { background: rgb(150, 112, 28); color: rgb(255, 255, 255); }" in css.text
    assert "label" not in css.text  # small labels keep the foreground (contrast)
    assert shared_server.client().get("/pages/nope/tiers.css").status_code == 404


def test_desktop_gets_a_qr_code_of_this_page(shared_server: LiveServer, gold: dict) -> None:
    page = page_for(shared_server, gold, DESKTOP_CHROME_UA)
    found = _QR.search(page)
    assert found is not None
    svg = base64.b64decode(found.group(1)).decode()
    assert svg.startswith("<svg") and 'xmlns="http://www.w3.org/2000/svg"' in svg and "<script" not in svg
    # the phones get none
    assert 'id="qr"' not in page_for(shared_server, gold, IPHONE_SAFARI_UA)
    assert 'id="qr"' not in page_for(shared_server, gold, ANDROID_CHROME_UA)


def test_the_qr_code_reads_back_as_the_page_link(shared_server: LiveServer, gold: dict) -> None:
    # no QR decoder here: the same URL drawn by segno gives the same SVG
    from web.pages.card import qr_data_uri

    page = page_for(shared_server, gold, DESKTOP_CHROME_UA)
    link = urlsplit(gold["links"]["page"])
    own = f"{shared_server.base}{link.path}?{link.query}"
    assert f'src="{qr_data_uri(own)}"' in page


def test_badges_by_platform(shared_server: LiveServer, gold: dict) -> None:
    iphone = page_for(shared_server, gold, IPHONE_SAFARI_UA)
    assert 'src="/static/badges/apple-wallet-ru.svg" alt="Добавить в Apple Wallet"' in iphone
    desktop = anchors(page_for(shared_server, gold, DESKTOP_CHROME_UA))
    assert desktop["apple"][1] == "Добавить в Apple Wallet"
    assert [k for k in desktop if k.startswith("app-")]
    android = anchors(page_for(shared_server, gold, ANDROID_CHROME_UA))
    assert "apple" not in android and "pkpass" in android


def test_badge_artwork_is_served(shared_server: LiveServer) -> None:
    client = shared_server.client()
    for name in BADGES.values():
        answer = client.get(f"/static/badges/{name}")
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("image/svg+xml")
        assert "STAND-IN" in answer.text
    assert client.get("/static/badges/README.md").status_code == 404
    assert client.get("/static/badges/other.svg").status_code == 404


def test_an_operators_badges_replace_the_stand_ins(server_factory, tmp_path: Path) -> None:
    folder = tmp_path / "badges"
    folder.mkdir()
    (folder / "apple-wallet-ru.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"><!-- official --></svg>')
    server = server_factory(WALLET_BADGES_DIR=str(folder))
    client = server.client()
    assert "official" in client.get("/static/badges/apple-wallet-ru.svg").text
    # a file the operator did not provide falls back to the stand-in
    assert "STAND-IN" in client.get("/static/badges/google-wallet-en.svg").text


def test_a_bad_link_is_a_404_page(shared_server: LiveServer, gold: dict) -> None:
    client = shared_server.client()
    link = gold["links"]["page"]
    for bad in (link.replace("sig=", "sig=0"), link.split("?")[0], "/c/" + "x" * 80 + "?" + urlsplit(link).query):
        answer = client.get(bad)
        assert answer.status_code == 404 and answer.headers["content-type"].startswith("text/html")
        assert "Ссылка неверна или устарела" in answer.text


def test_the_pass_preview_image(shared_server: LiveServer) -> None:
    url = "/v1/programs/coffee/preview.png"
    assert shared_server.client().get(url).status_code == 401
    assert shared_server.api("issuer").get(url).status_code == 403
    marketing = shared_server.api("marketing")
    images = {}
    for tier in ("base", "gold", "platinum"):
        answer = marketing.get(url, params={"tier": tier, "locale": "en"})
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
        with Image.open(io.BytesIO(answer.content)) as image:
            assert image.size == SIZE
        images[tier] = answer.content
    assert len(set(images.values())) == 3
    assert shared_server.api("admin").get(url).status_code == 200
    assert marketing.get(url, params={"tier": "diamond"}).status_code == 400
    assert marketing.get(url, params={"locale": "de"}).status_code == 400
    assert marketing.get("/v1/programs/nope/preview.png").status_code == 404
