"""Dead letters through the real service, on both stores: a push APNs refuses for good is
dead-lettered, listed (paged, counted) and, once APNs takes it again, re-queued by `admin` and
delivered; it is never in the outbox and among the dead letters at once."""

from __future__ import annotations

import uuid

from tests.fakes.apns_server import ApnsReply
from tests.web.apns_thread import ThreadedApns
from tests.web.test_push_e2e import push_env, register, token, wait_for


def test_a_dead_letter_is_listed_then_requeued_and_delivered(server_factory, apns: ThreadedApns) -> None:
    server = server_factory(**push_env(apns))
    admin = server.api("admin")
    cards = [server.issue("dead-" + uuid.uuid4().hex[:8]) for _ in range(3)]
    tokens = [token() for _ in cards]
    for issued, t in zip(cards, tokens, strict=True):
        register(server, issued, t)
        apns.run(apns.server.program, t, ApnsReply(400, "BadTopic"))  # a permanent failure
    events = [{"id": uuid.uuid4().hex, "card": c["card"], "version": 1, "balance": 5} for c in cards]
    assert len(server.post_ledger(events).json()["accepted"]) == 3

    wait_for(lambda: admin.get("/v1/admin/dead-letters").json()["total"] == 3, timeout=30)
    listed = admin.get("/v1/admin/dead-letters").json()
    assert [d["kind"] for d in listed["dead_letters"]] == ["pass_update"] * 3
    newest, *older = listed["dead_letters"]
    page = admin.get("/v1/admin/dead-letters", params={"limit": 1, "before": newest["id"]}).json()
    assert [d["id"] for d in page["dead_letters"]] == [older[0]["id"]]
    assert all(t not in str(listed) for t in tokens)

    # refusals change nothing
    assert server.api("marketing").post("/v1/admin/dead-letters/requeue").status_code == 403
    assert admin.post("/v1/admin/dead-letters/requeue", params={"id": "no such id!"}).status_code == 400
    assert admin.post("/v1/admin/dead-letters/requeue", params={"id": newest["id"], "limit": 1}).status_code == 400
    assert admin.post("/v1/admin/dead-letters/requeue", params={"id": "999999999"}).json() == {"requeued": []}
    assert admin.get("/v1/admin/dead-letters").json()["total"] == 3

    for t in tokens:  # APNs takes them now
        apns.run(apns.server.program, t, ApnsReply(200))
    one = admin.post("/v1/admin/dead-letters/requeue", params={"id": newest["id"]})
    assert one.status_code == 200 and one.json() == {"requeued": [newest["id"]]}
    rest = admin.post("/v1/admin/dead-letters/requeue").json()["requeued"]
    assert sorted(rest) == sorted(d["id"] for d in older)
    assert admin.post("/v1/admin/dead-letters/requeue").json() == {"requeued": []}  # each moved once

    def delivered(t: str) -> bool:
        return any(r.token == t and r.status == 200 for r in apns.requests())

    wait_for(lambda: all(delivered(t) for t in tokens), timeout=30)
    wait_for(lambda: "wallet_outbox_pending 0.0" in server.client().get("/metrics").text, timeout=30)
    assert admin.get("/v1/admin/dead-letters").json()["total"] == 0
    assert "wallet_outbox_oldest_age_seconds 0.0" in server.client().get("/metrics").text
