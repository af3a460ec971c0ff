"""The web process as `python -m cli serve` runs it (make run, the Procfile): request heads are
bounded (431 past 16 KiB, memory flat under 32 MiB heads), connections are bounded (503), and
the start-up banner names the store without its password."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.web.conftest import ROOT, free_port, service_env
from web.serving import MAX_HEADER_BYTES


class Served:
    def __init__(self, certs: Path, tmp: Path, **extra: str) -> None:
        self.port = free_port()
        env = service_env(certs, f"sqlite:///{tmp / 'w.db'}", self.port, **extra)
        env.update({"HOST": "127.0.0.1", "PORT": str(self.port)})
        self.log = tmp / "serve.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cli", "serve", "--log-level", "warning"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise AssertionError("server did not start")

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def raw(self, head: bytes) -> bytes:
        """Send `head` (a request line and headers), return what the server answered."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            try:
                sock.sendall(head)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server stopped reading: what it answered is still there
            chunks = []
            try:
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
            except (ConnectionResetError, TimeoutError):
                pass
            return b"".join(chunks)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def served(certs_dir: Path, tmp_path: Path) -> Iterator[Served]:
    server = Served(certs_dir, tmp_path, WALLET_MAX_CONNECTIONS="8")
    server.wait_healthy()
    yield server
    server.stop()


def test_request_heads_over_16_kib_get_431_and_smaller_ones_are_served(served: Served) -> None:
    small = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * (MAX_HEADER_BYTES // 2) + b"\r\n\r\n"
    assert served.raw(small).startswith(b"HTTP/1.1 200")
    big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * (MAX_HEADER_BYTES + 100) + b"\r\n\r\n"
    assert served.raw(big).startswith(b"HTTP/1.1 431")
    many = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(3000)) + b"\r\n"
    assert served.raw(many).startswith(b"HTTP/1.1 431")
    assert httpx.get(f"http://127.0.0.1:{served.port}/healthz").status_code == 200  # still serving


def test_huge_request_heads_do_not_grow_the_process(served: Served) -> None:
    before = served.rss_kib()
    huge = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * (32 * 1024 * 1024)
    for _ in range(6):
        assert served.raw(huge).startswith(b"HTTP/1.1 431")
    assert served.rss_kib() - before < 20 * 1024  # 6 x 32 MiB heads: not kept


def test_connections_beyond_the_bound_get_503(served: Served) -> None:
    idle = [socket.create_connection(("127.0.0.1", served.port), timeout=5) for _ in range(8)]
    try:
        time.sleep(0.2)
        assert served.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 503")
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.2)
    assert httpx.get(f"http://127.0.0.1:{served.port}/healthz").status_code == 200


def test_the_banner_names_the_store_without_its_password(certs_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    env = service_env(certs_dir, "redis://:not-the-password-0xA1@127.0.0.1:6379/15?prefix=test-banner:", port)
    env.update({"PORT": str(port)})
    log = tmp_path / "banner.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "serve"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 20
        while "store:" not in log.read_text() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        time.sleep(0.5)  # whatever it logs right after the banner, too
    finally:
        proc.terminate()
        proc.wait(10)
    output = log.read_text()
    assert "store:    redis://***@127.0.0.1:6379/15?prefix=test-banner:" in output
    assert "not-the-password-0xA1" not in output
