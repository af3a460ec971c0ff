"""One pass cannot make unbounded work: whoever holds its token registers at most
WALLET_MAX_DEVICES_PER_PASS devices (the least recently updated go), and at most so many
registrations a minute (429 with Retry-After beyond, nothing stored). Both stores, real server."""

from __future__ import annotations

import uuid

from tests.web.conftest import PASS_TYPE_ID, LiveServer
from tests.web.iphone import read_pass_json


def _holder(server: LiveServer) -> tuple[dict, str]:
    issued = server.issue("acc-" + uuid.uuid4().hex[:8])
    token = read_pass_json(server.client().get(issued["links"]["apple"]).content)["authenticationToken"]
    return issued, token


def _register(server: LiveServer, serial: str, token: str, device: str):
    return server.client().post(
        f"/passkit/v1/devices/{device}/registrations/{PASS_TYPE_ID}/{serial}",
        headers={"Authorization": f"ApplePass {token}"},
        json={"pushToken": uuid.uuid4().hex * 2},
    )


def test_registrations_per_pass_are_capped_and_rate_limited(server_factory) -> None:
    server = server_factory(WALLET_MAX_DEVICES_PER_PASS="3")
    issued, token = _holder(server)
    serial, number = issued["serial"], issued["card"]
    for i in range(5):
        assert _register(server, serial, token, f"dev{i}").status_code == 201
    assert server.api().get(f"/v1/cards/{number}").json()["devices"] == 3
    # the newest are kept: the first devices no longer hear of this pass
    assert server.client().get(f"/passkit/v1/devices/dev0/registrations/{PASS_TYPE_ID}").status_code == 204
    assert server.client().get(f"/passkit/v1/devices/dev4/registrations/{PASS_TYPE_ID}").status_code == 200

    # 20 a minute per pass: 5 done, 15 more pass, the 21st is refused and stores nothing
    for i in range(5, 20):
        assert _register(server, serial, token, f"dev{i}").status_code == 201
    refused = _register(server, serial, token, "dev-over")
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert server.client().get(f"/passkit/v1/devices/dev-over/registrations/{PASS_TYPE_ID}").status_code == 204
    # another pass is not held back by this one's limit
    other, other_token = _holder(server)
    assert _register(server, other["serial"], other_token, "dev-other").status_code == 201
