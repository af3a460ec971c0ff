"""The fake APNs (tests/fakes) on a loop of its own in a background thread, so synchronous
tests can run it next to the real service processes; its TLS identity comes from the dev PKI."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from passes.apple.pki import issue_server_cert
from tests.fakes.apns_server import FakeApnsServer


class ThreadedApns:
    def __init__(self, certs_dir: Path) -> None:
        cert, key = issue_server_cert(certs_dir, ["127.0.0.1", "localhost"], name="apns-fake")
        self.ca_file = str(certs_dir / "ca.pem")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = FakeApnsServer(cert, key, client_ca_file=self.ca_file)
        self.call(self.server.start())

    def call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    def run(self, function, *args):
        """Run a plain function on the fake's loop (its state is only touched from there)."""

        async def wrapper():
            return function(*args)

        return self.call(wrapper())

    @property
    def url(self) -> str:
        return self.server.url

    def tokens(self) -> list[str]:
        return self.run(lambda: [r.token for r in self.server.requests])

    def requests(self) -> list:
        return self.run(lambda: list(self.server.requests))

    def close(self) -> None:
        self.call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
