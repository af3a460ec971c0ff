"""The fake APNs (tests/fakes/apns_server.py: HTTP/2 over TLS, client certificates checked against
the dev CA) in a subprocess of its own, so that its TLS and HTTP/2 work is not on the harness's
core, streaming each request it answered to stdout as `<token> <unix time> <status>`.

    python -m chaos.apns --cert server.pem --key server.key --ca ca.pem

The first line is the port; then one line per request, flushed every few milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.fakes.apns_server import FakeApnsServer

FLUSH_SECONDS = 0.01


async def _serve(args: argparse.Namespace) -> None:
    server = FakeApnsServer(args.cert, args.key, client_ca_file=args.ca, port=args.port)
    await server.start()
    print(server.port, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sent = 0
    while not stop.is_set():
        requests = server.requests
        if len(requests) > sent:
            lines = [f"{r.token} {r.at:.6f} {r.status}\n" for r in requests[sent:]]
            sent = len(requests)
            sys.stdout.write("".join(lines))
            sys.stdout.flush()
        try:
            await asyncio.wait_for(stop.wait(), FLUSH_SECONDS)
        except TimeoutError:
            pass
    await server.stop()


@dataclass
class Push:
    token: str
    at: float
    status: int


@dataclass
class ApnsProcess:
    """The harness's side: start it, read its stream, `on_push` called for every request."""

    proc: asyncio.subprocess.Process
    url: str
    on_push: Callable[[Push], None] | None = None
    pushes: dict[str, list[Push]] = field(default_factory=dict)
    total: int = 0
    reader: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, cert: Path, key: Path, ca: Path, cwd: Path) -> ApnsProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "chaos.apns",
            "--cert",
            str(cert),
            "--key",
            str(key),
            "--ca",
            str(ca),
            cwd=cwd,
            stdout=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
        except TimeoutError:
            line = b""
        if not line.strip().isdigit():
            proc.kill()
            await proc.wait()
            raise RuntimeError(f"fake APNs did not start (got {line!r})")
        self = cls(proc, f"https://127.0.0.1:{int(line)}")
        self.reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            token, at, status = line.decode().split()
            push = Push(token, float(at), int(status))
            self.pushes.setdefault(token, []).append(push)
            self.total += 1
            if self.on_push is not None:
                self.on_push(push)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self.reader is not None:
            try:
                await asyncio.wait_for(self.reader, 5)
            except (TimeoutError, asyncio.CancelledError):
                self.reader.cancel()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake APNs streaming each request (chaos run)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--ca", required=True)
    asyncio.run(_serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
