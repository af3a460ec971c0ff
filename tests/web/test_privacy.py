"""Data-subject requests through the real service, on both stores: the export shows what is kept,
erasure removes the personal data everywhere, voids the Apple pass (pushed to every device through
the fake APNs, then the registrations dropped) and the Google object, drops an enrolment
announcement not yet sent, keeps the card number and ledger figures, and is idempotent."""

from __future__ import annotations

import io
import uuid
import zipfile
from pathlib import Path

from tests.fakes.google_wallet_server import FakeGoogleWalletServer
from tests.fakes.webhook_server import FakeWebhookServer
from tests.pii_guard import sensitive
from tests.web.apns_thread import ThreadedApns
from tests.web.conftest import ISSUED_MEMBER, PASS_TYPE_ID, LiveServer
from tests.web.iphone import read_pass_json
from tests.web.test_google_e2e import ISSUER, google, google_env  # noqa: F401  (the fixture)
from tests.web.test_join import card_and_consents, fresh_phone, in_store, join, serial_of
from tests.web.test_push_e2e import WorkerProcess, push_env, register, token, wait_for


def _pass_json(server: LiveServer, issued: dict) -> dict:
    response = server.client().get(issued["links"]["apple"])
    assert response.status_code == 200
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert "pass.json" in archive.namelist()
    return read_pass_json(response.content)


def _pushes_to(apns: ThreadedApns, push_token: str) -> int:
    return sum(1 for r in apns.requests() if r.token == push_token and r.status == 200)


def _devices(server: LiveServer, number: str) -> int:
    return server.api().get(f"/v1/cards/{number}").json()["devices"]


def test_erasure_voids_the_pass_pushes_it_then_forgets_every_device(server_factory, apns: ThreadedApns) -> None:
    server = server_factory(**push_env(apns))
    issued = server.issue("erase-" + uuid.uuid4().hex[:8], balance=120)
    number = issued["card"]
    tokens = [token(), token()]
    devices = [register(server, issued, t) for t in tokens]
    app = server.client(Authorization=f"Card {number}:{sensitive(issued['app_token'], 'app token')}")
    app_token = sensitive("f" + uuid.uuid4().hex * 3, "fcm token")
    assert app.post("/v1/apps/devices", json={"platform": "android", "token": app_token}).status_code == 200
    admin = server.api("admin")

    before = admin.get(f"/v1/members/{number}/export")
    assert before.status_code == 200, before.text
    exported = before.json()
    assert exported["card"]["member"]["name"] == ISSUED_MEMBER["name"]
    assert exported["card"]["member"]["phone"] == ISSUED_MEMBER["phone"]
    assert "auth_token" not in exported["card"] and exported["card"]["app_token"] is True
    assert sorted(d["device"] for d in exported["devices"]) == sorted(devices)
    assert all(t not in before.text for t in tokens) and app_token not in before.text  # hints only
    assert [t["platform"] for t in exported["app_tokens"]] == ["android"]
    assert issued["app_token"] not in before.text

    erased = admin.delete(f"/v1/members/{number}")
    assert erased.status_code == 200, erased.text
    answer = erased.json()
    assert answer["card"] == number and answer["erased"] is True and answer["erased_at"] > 0

    # every device is told of the void once, then forgotten
    wait_for(lambda: all(_pushes_to(apns, t) == 1 for t in tokens), timeout=30)
    wait_for(lambda: _devices(server, number) == 0, timeout=30)
    voided = _pass_json(server, issued)
    assert voided["voided"] is True and ISSUED_MEMBER["name"] not in str(voided)
    assert "locations" not in voided

    after = admin.get(f"/v1/members/{number}/export").json()
    assert after["card"]["member"] == {"name": "", "phone": None, "email": None}
    assert after["card"]["erased_at"] == answer["erased_at"] and after["card"]["app_token"] is False
    assert after["card"]["balance"] == 120 and after["card"]["number"] == number  # kept for accounting
    assert after["consents"] == [] and after["devices"] == [] and after["app_tokens"] == [] and after["alerts"] == []

    # again: nothing changes, the same answer
    again = admin.delete(f"/v1/members/{number}")
    assert again.status_code == 200 and again.json() | {"devices": 0} == answer | {"erased": False, "devices": 0}
    # the app's secret is gone, and the voided pass takes no new device
    assert app.post("/v1/geo/ping", json={"lat": 55.75, "lon": 37.62}).status_code == 401
    auth = voided["authenticationToken"]
    refused = server.client().post(
        f"/passkit/v1/devices/dev{uuid.uuid4().hex}/registrations/{PASS_TYPE_ID}/{issued['serial']}",
        headers={"Authorization": f"ApplePass {auth}"},
        json={"pushToken": token()},
    )
    assert refused.status_code == 401
    assert _devices(server, number) == 0

    # the ledger still posts to the card (accounting): accepted, nobody to push to
    posted = server.post_ledger([{"id": uuid.uuid4().hex, "card": number, "version": 1, "balance": 200}])
    assert len(posted.json()["accepted"]) == 1
    assert server.api().get(f"/v1/cards/{number}").json()["balance"] == 200
    assert all(_pushes_to(apns, t) == 1 for t in tokens)

    # the phone index no longer finds the card
    async def by_phone(store):
        return await store.card_by_phone("coffee", ISSUED_MEMBER["phone"])

    assert in_store(server_factory.database_url, by_phone) is None


def test_unknown_card_wrong_role_and_bad_number(live_server: LiveServer) -> None:
    issued = live_server.issue("erase-roles-" + uuid.uuid4().hex[:8])
    number = issued["card"]
    admin = live_server.api("admin")
    assert admin.get("/v1/members/4000000000000002/export").status_code == 404
    assert admin.delete("/v1/members/4000000000000002").json()["error"]["code"] == "unknown_card"
    assert admin.delete("/v1/members/12").status_code == 404
    for role in ("issuer", "marketing"):
        assert live_server.api(role).delete(f"/v1/members/{number}").status_code == 403
        assert live_server.api(role).get(f"/v1/members/{number}/export").status_code == 403
    assert live_server.client().delete(f"/v1/members/{number}").status_code == 401
    # nothing was erased by the refused calls
    assert admin.get(f"/v1/members/{number}/export").json()["card"]["member"]["name"] == ISSUED_MEMBER["name"]


def test_an_enrolment_announcement_not_yet_sent_is_dropped(server_factory) -> None:
    secret = "enroll-secret-" + "p" * 24
    with FakeWebhookServer(secret) as hook:
        hook.script(*([500] * 50))  # the ledger backend is down: the announcement keeps being retried
        server = server_factory(WALLET_ENROLL_WEBHOOK_URL=hook.url, WALLET_ENROLL_WEBHOOK_SECRET=secret)
        typed, e164 = fresh_phone()
        answer = join(server.client(), phone=typed, email="erase-me@example.com", marketing_email="yes")
        assert answer.status_code == 303
        card, consents = card_and_consents(server_factory.database_url, serial_of(answer.headers["location"]))
        assert consents
        hook.wait_for(1)
        sensitive(card.number, "card number")

        # the outbox entry names the card only: no PII waits in the store's queue
        async def outbox_fields(store):
            return [d.entry.fields for d in await store.list_dead_letters(100)]

        assert server.api("admin").delete(f"/v1/members/{card.number}").json()["erased"] is True
        wait_for(lambda: "wallet_outbox_pending 0.0" in server.client().get("/metrics").text, timeout=30)
        calls = len(hook.calls)
        card_after, consents_after = card_and_consents(server_factory.database_url, card.serial)
        assert consents_after == [] and card_after.member.phone is None and card_after.member.email is None
        assert all(e164 not in str(f) for f in in_store(server_factory.database_url, outbox_fields))
    assert len(hook.calls) == calls  # nothing went out after the erasure
    assert all(call.body["card"] == card.number for call in hook.calls)


def test_erasure_makes_the_google_object_inactive_and_nameless(
    server_factory,
    apns: ThreadedApns,
    google: FakeGoogleWalletServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    server: LiveServer = server_factory(**push_env(apns, WALLET_RUN_WORKER="0"), **google_env(google, tmp_path))
    worker = WorkerProcess(server.env, tmp_path / "worker.log")
    try:
        issued = server.issue("erase-google-" + uuid.uuid4().hex[:8], balance=10)
        object_id = f"{ISSUER}.{issued['serial']}"
        wait_for(lambda: object_id in google.objects, timeout=30)
        assert google.objects[object_id]["accountName"] == ISSUED_MEMBER["name"]
        exported = server.api("admin").get(f"/v1/members/{issued['card']}/export").json()
        assert exported["google_wallet"]["object_id"] == object_id
        assert server.api("admin").delete(f"/v1/members/{issued['card']}").status_code == 200
        wait_for(lambda: google.objects[object_id].get("state") == "INACTIVE", timeout=30)
        assert not google.objects[object_id].get("accountName")
    finally:
        worker.stop()
