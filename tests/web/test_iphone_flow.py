"""The main path over real HTTP against uvicorn, on both stores: a simulated iPhone adds the
pass, registers, the ledger posts a change, the phone is pushed, asks for changed serials,
fetches the new pass and sees the new balance."""

from __future__ import annotations

import time
import uuid

from push.results import token_hint
from tests.web.conftest import LiveServer
from tests.web.iphone import SimulatedIPhone, read_pass_json


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def pushes_to(server: LiveServer, phone: SimulatedIPhone) -> list[dict]:
    """The journal's pushes to the phone's current token (journaled as a hint, never whole)."""
    body = server.api("admin").get("/v1/admin/pushes", params={"limit": 1000}).json()
    return [
        p
        for p in body["pushes"]
        if p.get("device_id") == phone.device_id and p.get("token") == token_hint(phone.push_token)
    ]


def test_simulated_iphone_end_to_end(live_server: LiveServer) -> None:
    issued = live_server.issue("acc-" + uuid.uuid4().hex[:8], balance=100)
    number, serial = issued["card"], issued["serial"]

    plain = live_server.client()
    download = plain.get(issued["links"]["apple"])
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/vnd.apple.pkpass"
    assert read_pass_json(download.content)["webServiceURL"] == f"{live_server.base}/passkit"

    phone = SimulatedIPhone(plain, device_id="dev" + uuid.uuid4().hex, push_token="ab" * 32)
    assert phone.add_pass(download.content, download.headers.get("last-modified")) == serial
    assert phone.passes[serial].field("balance")["value"] == 100

    assert phone.register(serial).status_code == 201
    assert phone.register(serial).status_code == 200
    state = live_server.api().get(f"/v1/cards/{number}").json()
    assert (state["devices"], state["devices_by_client"]) == (1, {"apple": 1})

    # Wallet starts with no tag: every registered pass is listed
    first = phone.changed_serials(serial)
    assert first.status_code == 200 and first.json()["serialNumbers"] == [serial]
    phone.last_updated = first.json()["lastUpdated"]
    assert phone.changed_serials(serial, phone.last_updated).status_code == 204

    answer = live_server.post_ledger(
        [
            {
                "id": "ev-" + uuid.uuid4().hex,
                "card": number,
                "version": 1,
                "balance": 350,
                "tier": "base",
                "pending": 20,
                "message": "Начислено 250 баллов",
                "occurred_at": "2026-11-23T10:00:00Z",
            }
        ]
    )
    assert answer.status_code == 202, answer.text
    assert len(answer.json()["accepted"]) == 1

    # the device gets an (empty) push with its token, then pulls the change
    wait_for(lambda: pushes_to(live_server, phone))
    assert phone.on_push() == [serial]
    updated = phone.passes[serial]
    assert updated.field("balance")["value"] == 350
    assert "%@" in updated.localized(updated.field("balance")["changeMessage"])
    last_operation = next(
        f for f in updated.json["storeCard"]["backFields"] if f.get("value") == "Начислено 250 баллов"
    )
    assert "%@" in updated.localized(last_operation["changeMessage"])
    assert updated.last_modified

    # nothing changed since: 304 for the pass, 204 for the list
    assert phone.fetch(serial).status_code == 304
    assert phone.changed_serials(serial, phone.last_updated).status_code == 204

    # a re-registration with a new push token replaces the stored one: the next push goes there
    phone.push_token = "cd" * 32
    assert phone.register(serial).status_code == 200
    assert (
        live_server.post_ledger(
            [{"id": "ev-" + uuid.uuid4().hex, "card": number, "version": 2, "balance": 400}]
        ).status_code
        == 202
    )
    wait_for(lambda: pushes_to(live_server, phone))
    assert phone.on_push() == [serial]
    assert phone.passes[serial].field("balance")["value"] == 400

    assert phone.log(["Web service error for pass.test: something"]).status_code == 200
    logs = live_server.api("admin").get("/v1/admin/device-logs").json()["logs"]
    assert any("something" in entry["message"] for entry in logs)

    assert phone.unregister(serial).status_code == 200
    assert phone.changed_serials(serial).status_code == 204
    assert live_server.api().get(f"/v1/cards/{number}").json()["devices"] == 0


def test_two_changes_in_one_instant_are_both_listed(live_server: LiveServer) -> None:
    """A device holding two passes changed in the same millisecond sees both after its tag."""
    a = live_server.issue("acc-" + uuid.uuid4().hex[:8])
    b = live_server.issue("acc-" + uuid.uuid4().hex[:8])
    plain = live_server.client()
    phone = SimulatedIPhone(plain, device_id="dev" + uuid.uuid4().hex, push_token="ef" * 32)
    for issued in (a, b):
        data = plain.get(issued["links"]["apple"]).content
        serial = phone.add_pass(data)
        assert phone.register(serial).status_code == 201
    tag = phone.changed_serials(a["serial"]).json()["lastUpdated"]
    events = [{"id": "ev-" + uuid.uuid4().hex, "card": c["card"], "version": 1, "balance": 5} for c in (a, b)]
    assert live_server.post_ledger(events).json()["accepted"] == [e["id"] for e in events]
    listed = phone.changed_serials(a["serial"], tag).json()["serialNumbers"]
    assert sorted(listed) == sorted([a["serial"], b["serial"]])
