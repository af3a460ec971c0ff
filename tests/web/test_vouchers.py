"""Gift certificates and offers against the real service on both stores: signed posts, idempotent ids,
the signed pass (openssl), the change message on the loyalty pass, redeem voiding and pushing through
the fake APNs, offers by card and by segment, and no code, PIN or phone in the server's log."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import httpx

from ledger.signature import sign
from store.factory import open_store
from tests.passes.conftest import unzip, verify_with_openssl
from tests.web.conftest import LEDGER_SECRET, PASS_TYPE_ID, LiveServer
from tests.web.iphone import read_pass_json
from tests.web.test_push_e2e import push_env, register, token, wait_for

CODE, PIN, PHONE = "GIFT-5521-7788", "9371", "+79001234567"


def post_signed(server: LiveServer, path: str, body: dict | None) -> httpx.Response:
    raw = b"" if body is None else json.dumps(body).encode()
    header = sign(LEDGER_SECRET, int(time.time()), raw)
    return server.client().post(
        path, content=raw, headers={"X-Wallet-Signature": header, "Content-Type": "application/json"}
    )


def back_field(pass_json: dict, style: str, key: str) -> dict:
    for item in pass_json[style].get("backFields", []):
        if item["key"] == key:
            return item
    raise KeyError(key)


def vouchers_in_store(url: str, card_number: str) -> list:
    async def read() -> list:
        store = await open_store(url)
        try:
            return await store.vouchers_of_card(card_number)
        finally:
            await store.close()

    return asyncio.run(read())


def test_certificate_issue_notice_redeem_and_secrets(server_factory, apns, certs_dir: Path, tmp_path: Path) -> None:
    server = server_factory(**push_env(apns))
    issued = server.issue("cert-" + uuid.uuid4().hex[:8])
    loyalty_token = token()
    register(server, issued, loyalty_token)
    body = {
        "id": "cert-" + uuid.uuid4().hex[:8],
        "card": issued["card"],
        "code": CODE,
        "pin": PIN,
        "amount": 1000,
        "currency": "RUB",
        "expires": "2027-03-31",
    }
    unsigned = server.client().post("/v1/certificates", json=body)
    assert unsigned.status_code == 401 and unsigned.json()["error"]["code"] == "bad_signature"
    created = post_signed(server, "/v1/certificates", body)
    assert created.status_code == 201, created.text
    answer = created.json()
    assert answer["id"] == body["id"] and answer["links"]["apple"].startswith(server.base)
    again = post_signed(server, "/v1/certificates", body)
    assert again.status_code == 200 and again.json()["serial"] == answer["serial"]

    # the pass: signed, store card, code as barcode, PIN on the back only, expiry
    pkpass = server.client().get(answer["links"]["apple"])
    assert pkpass.status_code == 200 and pkpass.headers["content-type"] == "application/vnd.apple.pkpass"
    files = unzip(pkpass.content)
    verify_with_openssl(files, certs_dir, tmp_path / "verify")
    pj = json.loads(files["pass.json"])
    assert pj["serialNumber"] == answer["serial"] and pj["barcodes"][0]["message"] == CODE
    assert back_field(pj, "storeCard", "pin")["value"] == PIN
    assert PIN not in json.dumps({k: v for k, v in pj["storeCard"].items() if k != "backFields"})
    assert pj["expirationDate"] == "2027-03-31T23:59:59Z" and "voided" not in pj
    assert server.client().get(answer["links"]["apple"].split("?")[0]).status_code == 404

    # the loyalty pass on the registered device announces it, and is pushed
    wait_for(lambda: any(r.token == loyalty_token for r in apns.requests()))
    card_pass = read_pass_json(server.client().get(issued["links"]["apple"]).content)
    assert back_field(card_pass, "storeCard", "news")["value"] == "Новый подарочный сертификат на 1000 ₽"

    # PassKit serves and registers the voucher serial as a card's
    voucher_token = token()
    apple = server.client(Authorization=f"ApplePass {pj['authenticationToken']}")
    device = "dev" + uuid.uuid4().hex
    url = f"/passkit/v1/devices/{device}/registrations/{PASS_TYPE_ID}"
    assert apple.post(f"{url}/{answer['serial']}", json={"pushToken": voucher_token}).status_code == 201
    listed = server.client().get(url).json()
    assert listed["serialNumbers"] == [answer["serial"]]
    wrong = server.client(Authorization="ApplePass " + "x" * 32)
    assert wrong.get(f"/passkit/v1/passes/{PASS_TYPE_ID}/{answer['serial']}").status_code == 401

    # who sees the secrets
    admin = server.api("admin").get(f"/v1/certificates/{body['id']}").json()
    assert (admin["code"], admin["pin"]) == (CODE, PIN)
    issuer = server.api("issuer").get(f"/v1/certificates/{body['id']}").json()
    assert "code" not in issuer and "pin" not in issuer and issuer["voided"] is False

    # redeem: voided, pushed to the voucher's device, idempotent
    assert server.client().post(f"/v1/certificates/{body['id']}/redeem").status_code == 401
    redeemed = post_signed(server, f"/v1/certificates/{body['id']}/redeem", None)
    assert redeemed.status_code == 200 and redeemed.json()["redeemed"] is True
    wait_for(lambda: any(r.token == voucher_token for r in apns.requests()))
    changed = server.client().get(url, params={"passesUpdatedSince": listed["lastUpdated"]}).json()
    assert changed["serialNumbers"] == [answer["serial"]]
    latest = apple.get(f"/passkit/v1/passes/{PASS_TYPE_ID}/{answer['serial']}")
    assert latest.status_code == 200 and read_pass_json(latest.content)["voided"] is True
    assert post_signed(server, f"/v1/certificates/{body['id']}/redeem", {}).status_code == 200
    assert post_signed(server, "/v1/certificates/nope/redeem", None).status_code == 404
    assert server.api("issuer").get(f"/v1/certificates/{body['id']}").json()["voided"] is True

    # a bad code is refused without echoing it
    bad = post_signed(server, "/v1/certificates", {**body, "id": "other", "code": "secret code!"})
    assert bad.status_code == 400 and "secret" not in bad.text

    log = server.log_path.read_text(encoding="utf-8", errors="replace")
    for secret in (CODE, PIN, PHONE, "secret code"):
        assert secret not in log


def set_balance(server: LiveServer, card: str, balance: int) -> None:
    answer = server.post_ledger([{"id": uuid.uuid4().hex, "card": card, "version": 1, "balance": balance}])
    assert answer.json()["accepted"], answer.text


def test_offers_by_card_and_by_segment_reach_exactly_the_qualifying_cards(server_factory) -> None:
    server = server_factory()
    url = server_factory.database_url
    cards = [server.issue(f"off-{i}-{uuid.uuid4().hex[:6]}") for i in range(4)]
    for issued, balance in zip(cards, (100, 600, 900, 50), strict=True):
        set_balance(server, issued["card"], balance)
    marketing = server.api("marketing")
    store_body = {"program": "coffee", "name": "Тверская", "lat": 55.76, "lon": 37.61, "timezone": "Europe/Moscow"}
    assert marketing.put("/v1/stores/tv-1", json=store_body).status_code in (200, 201)

    one = {"id": "o-" + uuid.uuid4().hex[:8], "program": "coffee", "card": cards[0]["card"], "title": "Капучино -50%"}
    made = post_signed(server, "/v1/offers", {**one, "code": "HALF50", "stores": ["tv-1"]})
    assert made.status_code == 201, made.text
    assert post_signed(server, "/v1/offers", {**one, "code": "HALF50", "stores": ["tv-1"]}).status_code == 200
    pj = read_pass_json(server.client().get(made.json()["links"]["apple"]).content)
    assert "coupon" in pj and pj["locations"][0]["relevantText"] == "Капучино -50%"
    assert post_signed(server, "/v1/offers", {**one, "id": "x", "card": None}).status_code == 400

    segment = {
        "id": "seg-" + uuid.uuid4().hex[:8],
        "program": "coffee",
        "segment": {"when": {"min_balance": 500}, "stores": None},
        "title": "Десерт в подарок",
        "code": "DESSERT",
    }
    queued = post_signed(server, "/v1/offers", segment)
    assert queued.status_code == 202, queued.text
    assert queued.json()["job"] == f"offer:{segment['id']}"

    def held() -> list[int]:
        return [
            len([v for v in vouchers_in_store(url, c["card"]) if v.data.get("offer") == segment["id"]]) for c in cards
        ]

    wait_for(lambda: held() == [0, 1, 1, 0])
    assert post_signed(server, "/v1/offers", segment).status_code == 202  # again: nothing twice
    time.sleep(1.0)
    assert held() == [0, 1, 1, 0]
    assert [len(vouchers_in_store(url, c["card"])) for c in cards] == [1, 1, 1, 0]
    log = server.log_path.read_text(encoding="utf-8", errors="replace")
    assert "DESSERT" not in log and "HALF50" not in log and PHONE not in log


def test_the_card_page_lists_the_members_certificates_without_secrets(live_server: LiveServer) -> None:
    server = live_server
    issued = server.issue("page-" + uuid.uuid4().hex[:8])
    body = {
        "id": "cert-" + uuid.uuid4().hex[:8],
        "card": issued["card"],
        "code": CODE,
        "pin": PIN,
        "amount": 1500,
        "currency": "RUB",
        "expires": "2027-03-31",
    }
    created = post_signed(server, "/v1/certificates", body)
    assert created.status_code == 201, created.text
    page = server.client().get(issued["links"]["page"], headers={"Accept-Language": "en"})
    assert page.status_code == 200
    assert f'id="voucher-{created.json()["serial"]}"' in page.text
    assert "Certificates and offers" in page.text and "2027-03-31" in page.text
    assert CODE not in page.text and PIN not in page.text
    link = created.json()["links"]["apple"].replace(server.base, "").replace("&", "&amp;")
    assert link in page.text
