"""A store that does not confirm a write is an outage, answered 503 with Retry-After (never a
202 or 201, never a 500 with a traceback), and counted as a server error."""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.web.conftest import REDIS_TEST_URL, LiveServer, delete_redis_prefix, free_port, service_env


def test_an_unconfirmed_write_is_503_with_retry_after(certs_dir: Path, tmp_path: Path) -> None:
    # Redis WAIT for a replica this test server does not have: the write is never confirmed.
    url = f"{REDIS_TEST_URL}?prefix=test-outage:{uuid.uuid4().hex}:&wait_replicas=1"
    port = free_port()
    server = LiveServer(service_env(certs_dir, url, port), port, tmp_path / "server.log")
    try:
        server.start()
        answer = server.api().post(
            "/v1/cards", json={"program": "coffee", "account": "acc-outage", "member": {"name": "Anna"}}
        )
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "unavailable" and answer.headers["Retry-After"] == "1"
        metrics = server.client().get("/metrics").text
        assert 'wallet_http_server_errors_total{status="503"} 1.0' in metrics
        assert "Traceback" not in server.log_path.read_text()
    finally:
        server.close()
        delete_redis_prefix(url.replace("&wait_replicas=1", ""))
