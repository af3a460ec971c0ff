"""HTTP throughput of the real service: PassKit registrations, changed-serial queries and signed
ledger intake, each next to the pass-sign rate of the same machine measured in the same run.

Layout (two cores): the service runs as `uvicorn server:app --workers 1` pinned to core 0,
with its push worker in-process, on SQLite in a temp dir, exactly as a dev deployment runs;
the load client is a second process pinned to core 1 (`python -m bench.http --client ...`)
driving httpx over HTTP/1.1 keep-alive. Splitting cores keeps the client's CPU out of the
server's numbers. Each phase also reports the CPU the server, the client and everything else
on the machine used: a rate limited by the client (server core well under 100 %) or disturbed
by other processes is visible as such, and "per srv-s" (units per second of server CPU) is the
server's own cost, comparable with the sign rate, which is timed in CPU seconds too.

Timings are reported, never asserted: `main()` always returns 0.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.process import (
    ISSUER_KEY,
    LEDGER_SECRET,
    PASS_TYPE_ID,
    ROOT,
    TEAM_ID,
    core_busy_seconds,
    cpu_seconds,
    free_port,
    service_env,
    start_service,
    stop,
    wait_healthy,
)
from bench.process import cores as split_cores

LEDGER_TARGET = 2000.0  # events/s the ledger backend needs at peak (batches of 100, SQLite)

CARDS = 400  # 4 ledger posters x 100 cards: every batch of 100 touches 100 distinct cards
CONCURRENCY = 48  # in-flight PassKit requests (many devices at once)
LEDGER_POSTERS = 4  # in-flight ledger batches: a backend posts a few at a time, not dozens
BATCH = 100
PHASE_SECONDS = 5.0
SIGN_SECONDS = 2.0
CLIENT_TIMEOUT = 120.0


# -- shared helpers ----------------------------------------------------------------------------
# -- load client (runs in its own process) -----------------------------------------------------
@dataclass
class IssuedCard:
    number: str
    serial: str
    token: str


@dataclass
class Phase:
    name: str
    unit: str
    done: int = 0  # successful units (requests, or accepted events)
    requests: int = 0
    elapsed: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    server_cpu: float = 0.0  # share of one core the server used during the phase
    client_cpu: float = 0.0
    other_cpu: float = 0.0  # cores' worth used by neither (other processes on the machine)


# One request: returns (status label, units done) — e.g. ("202", 100) for a fully accepted batch.
Request = Callable[[int, int], Awaitable[tuple[str, int]]]


async def _timed(name: str, unit: str, seconds: float, workers: int, one: Request, server_pid: int) -> Phase:
    """Runs `workers` loops of `one(worker, i)` until the deadline; requests in flight at the
    deadline finish and count, and elapsed runs until the last one does."""
    import httpx

    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    done = 0
    cpu0, server0, busy0 = time.process_time(), cpu_seconds(server_pid), sum(core_busy_seconds().values())
    start = time.perf_counter()
    deadline = start + seconds

    async def loop(worker: int) -> None:
        nonlocal done
        i = 0
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                status, units = await one(worker, i)
            except httpx.HTTPError as exc:
                status, units = f"error:{type(exc).__name__}", 0
            latencies.append(time.perf_counter() - t0)
            statuses[status] += 1
            done += units
            i += 1

    await asyncio.gather(*(loop(w) for w in range(workers)))
    elapsed = time.perf_counter() - start
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else 0.0

    server, client = cpu_seconds(server_pid) - server0, time.process_time() - cpu0
    other = max(0.0, sum(core_busy_seconds().values()) - busy0 - server - client)
    return Phase(
        name,
        unit,
        done,
        len(latencies),
        elapsed,
        dict(statuses),
        pct(0.50),
        pct(0.99),
        server / elapsed,
        client / elapsed,
        other / elapsed,
    )


async def _issue_cards(clients: list[Any], count: int, run: str) -> list[IssuedCard]:
    """Issues `count` cards and reads each one's authenticationToken from its .pkpass, which is
    how a device learns it (the API never returns tokens otherwise)."""

    async def one(client: Any, i: int) -> IssuedCard:
        body = {"program": "coffee", "account": f"bench-{run}-{i}", "member": {"name": f"Bench {i}"}, "locale": "en"}
        issued = await client.post("/v1/cards", json=body, headers={"Authorization": f"Bearer {ISSUER_KEY}"})
        issued.raise_for_status()
        data = issued.json()
        pkpass = await client.get(data["links"]["apple"])
        pkpass.raise_for_status()
        with zipfile.ZipFile(io.BytesIO(pkpass.content)) as archive:
            token = json.loads(archive.read("pass.json"))["authenticationToken"]
        return IssuedCard(data["card"], data["serial"], token)

    async def lane(w: int) -> list[IssuedCard]:
        return [await one(clients[w], i) for i in range(w, count, len(clients))]

    lanes = await asyncio.gather(*(lane(w) for w in range(len(clients))))
    return [card for cards in lanes for card in cards]


async def _client(base: str, server_pid: int, seconds: float, cards_count: int) -> dict[str, Any]:
    import httpx

    from ledger.signature import sign

    run = secrets.token_hex(4)  # ids unique per run, should a database ever be reused
    # One AsyncClient with one keep-alive connection per concurrent lane, like one device each:
    # a single client with a 48-connection pool spends its CPU in httpcore's pool bookkeeping
    # (~300 req/s here versus ~1500 req/s with small pools), which would measure httpx, not us.
    one_connection = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    clients = [httpx.AsyncClient(base_url=base, limits=one_connection, timeout=30.0) for _ in range(CONCURRENCY)]
    try:
        t0 = time.perf_counter()
        cards = await _issue_cards(clients, cards_count, run)
        setup = time.perf_counter() - t0

        # (a) registrations: every request a new device (distinct ids -> always a fresh row, 201)
        registered: list[str] = []
        reg_path = f"/passkit/v1/devices/{{}}/registrations/{PASS_TYPE_ID}/{{}}"

        async def register(lane: int, i: int) -> tuple[str, int]:
            card = cards[(lane * 7919 + i) % len(cards)]
            device = f"bench{run}w{lane}n{i}"
            r = await clients[lane].post(
                reg_path.format(device, card.serial),
                json={"pushToken": secrets.token_hex(32)},
                headers={"Authorization": f"ApplePass {card.token}"},
            )
            if r.status_code == 201:
                registered.append(device)
            return str(r.status_code), int(r.status_code == 201)

        reg = await _timed("registrations", "req", seconds, CONCURRENCY, register, server_pid)

        # (b) changed serials, as Wallet asks them: a device's first question has no tag (200,
        # the full list); after that it passes the lastUpdated it was given (204: no changes).
        last_tag: dict[str, str] = {}

        async def serials(lane: int, i: int) -> tuple[str, int]:
            device = registered[(lane * 104729 + i // 2) % len(registered)]  # each device asks twice
            since = last_tag.get(device) if i % 2 else None
            params = {"passesUpdatedSince": since} if since else None
            r = await clients[lane].get(f"/passkit/v1/devices/{device}/registrations/{PASS_TYPE_ID}", params=params)
            if r.status_code == 200:
                last_tag[device] = r.json()["lastUpdated"]
            return str(r.status_code), int(r.status_code in (200, 204))

        ser = await _timed("serial queries", "req", seconds, CONCURRENCY, serials, server_pid) if registered else None

        # (c) ledger: each poster owns a disjoint slice of cards and posts sequentially, so
        # versions reach the server in order and every event must be accepted.
        version: Counter[str] = Counter()
        slices = [cards[p::LEDGER_POSTERS] for p in range(LEDGER_POSTERS)]
        occurred = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

        async def post_batch(poster: int, i: int) -> tuple[str, int]:
            mine = slices[poster]
            events = []
            for k in range(BATCH):
                card = mine[(i * BATCH + k) % len(mine)]
                version[card.number] += 1
                v = version[card.number]
                events.append(
                    {
                        "id": f"{run}-{card.number}-{v}",
                        "card": card.number,
                        "version": v,
                        "balance": (v * 37) % 9000,
                        "tier": "base",
                        "message": f"+{v} points",
                        "occurred_at": occurred,
                    }
                )
            body = json.dumps({"events": events}).encode()
            r = await clients[poster].post(
                "/v1/ledger/events",
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Wallet-Signature": sign(LEDGER_SECRET, int(time.time()), body),
                },
            )
            if r.status_code != 202:
                return str(r.status_code), 0
            answer = r.json()
            accepted = set(answer["accepted"]) & {e["id"] for e in events}
            refused = sum(len(answer[k]) for k in ("duplicate", "stale", "unknown", "invalid"))
            return ("202" if not refused else "202 with refusals"), len(accepted)

        led = await _timed("ledger events", "event", seconds, LEDGER_POSTERS, post_batch, server_pid)
    finally:
        for client in clients:
            await client.aclose()

    phases = [p for p in (reg, ser, led) if p is not None]
    return {
        "setup_seconds": setup,
        "cards": len(cards),
        "devices": len(registered),
        "phases": [asdict(p) for p in phases],
    }


def _client_main(args: argparse.Namespace) -> int:
    if args.core is not None:
        os.sched_setaffinity(0, {args.core})
    try:
        import uvloop  # the server uses it too; the client should not be the slower loop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(_client(args.client, args.server_pid, args.seconds, args.cards))
    print(json.dumps(result))
    return 0


# -- sign rate (baseline) ----------------------------------------------------------------------
def _sign_rate(certs: Path, seconds: float) -> float:
    """Passes built and signed per second of CPU on one core, cache bypassed, timed with
    bench/sign.py's own helpers so both benches measure signing the same way."""
    from bench.sign import rate, sample_card
    from passes.apple.pkpass import PassFactory
    from passes.apple.signing import Signer
    from passes.programs import load_programs

    templates = load_programs(ROOT / "pass_templates")
    factory = PassFactory(
        templates,
        Signer.from_dir(certs),
        pass_type_id=PASS_TYPE_ID,
        team_id=TEAM_ID,
        public_url="http://127.0.0.1:8000",
        cache_entries=0,
    )  # no cache: every render signs
    card = sample_card(templates["coffee"])
    return rate(lambda i: factory.render(card.with_changes(balance=i)), seconds)


# -- orchestration -----------------------------------------------------------------------------
def _report(result: dict[str, Any], sign_rate: float, cores: tuple[int, int] | None) -> None:
    where = f"server on core {cores[0]}, client on core {cores[1]}" if cores else "unpinned (fewer than 2 cores)"
    per_card = result["devices"] / result["cards"] if result["cards"] else 0.0
    print(
        f"bench http: {result['cards']} cards issued in {result['setup_seconds']:.1f} s, "
        f"{result['devices']} devices registered (~{per_card:.0f} per card, so each ledger event "
        f"fans out to that many pushes); {where}"
    )
    # per srv-s: units per second of server CPU, i.e. what one fully busy server core would do;
    # it stays meaningful when the client, not the server, limited the rate.
    print(
        f"{'measure':<16}{'rate/s':>9}{'x sign':>8}{'per srv-s':>10}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'srv cpu':>8}{'cli cpu':>8}{'others':>8}  answers"
    )
    print(
        f"{'pass sign':<16}{sign_rate:>9.0f}{1.0:>8.2f}{sign_rate:>10.0f}{'':>32}  "
        "in-process, per CPU-second of one core, cache bypassed"
    )
    for p in result["phases"]:
        rate = p["done"] / p["elapsed"] if p["elapsed"] else 0.0
        per_server_second = rate / p["server_cpu"] if p["server_cpu"] else 0.0
        answers = ", ".join(f"{k}: {v}" for k, v in sorted(p["statuses"].items()))
        print(
            f"{p['name']:<16}{rate:>9.0f}{rate / sign_rate if sign_rate else 0:>8.2f}{per_server_second:>10.0f}"
            f"{p['p50_ms']:>8.1f}{p['p99_ms']:>8.1f}{p['server_cpu']:>8.0%}{p['client_cpu']:>8.0%}"
            f"{p['other_cpu']:>8.0%}  {answers}"
        )
    ledger = next((p for p in result["phases"] if p["name"] == "ledger events"), None)
    if ledger is not None:
        rate = ledger["done"] / ledger["elapsed"] if ledger["elapsed"] else 0.0
        verdict = "OK" if rate >= LEDGER_TARGET else "BELOW"
        print(f"ledger intake: {rate:.0f} events/s (target ≥ {LEDGER_TARGET:.0f}) -> {verdict}")


def main(argv: list[str] | None = None) -> int:
    from passes.apple.pki import ensure_dev_pki

    seconds = PHASE_SECONDS
    tmp = Path(tempfile.mkdtemp(prefix="bench-http-"))
    cores = split_cores()
    port = free_port()
    log = tmp / "server.log"
    server = None
    try:
        ensure_dev_pki(tmp / "certs", PASS_TYPE_ID, TEAM_ID)
        server = start_service(
            service_env(tmp / "certs", tmp / "wallet.db", port), port, log, cores[0] if cores else None
        )
        # The sign baseline runs on the client's core while the server boots on its own.
        mask = os.sched_getaffinity(0) if cores else None
        if cores:
            os.sched_setaffinity(0, {cores[1]})
        try:
            sign_rate = _sign_rate(tmp / "certs", SIGN_SECONDS)
        finally:
            if mask:
                os.sched_setaffinity(0, mask)  # other benches in this process get every core back
        wait_healthy(server, port, log)
        cmd = [
            sys.executable,
            "-m",
            "bench.http",
            "--client",
            f"http://127.0.0.1:{port}",
            "--server-pid",
            str(server.pid),
            "--seconds",
            str(seconds),
            "--cards",
            str(CARDS),
        ]
        if cores:
            cmd += ["--core", str(cores[1])]
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=CLIENT_TIMEOUT)
        if done.returncode != 0 or not done.stdout.strip():
            print(f"bench http: load client failed ({done.returncode}):\n{done.stderr[-3000:]}")
            return 0
        _report(json.loads(done.stdout.strip().splitlines()[-1]), sign_rate, cores)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"bench http: {exc}")
    finally:
        stop(server)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.http")
    parser.add_argument("--client", metavar="BASE_URL", help="run as the load client against BASE_URL")
    parser.add_argument("--server-pid", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=PHASE_SECONDS)
    parser.add_argument("--cards", type=int, default=CARDS)
    parser.add_argument("--core", type=int, default=None)
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = _parse(sys.argv[1:])
    sys.exit(_client_main(arguments) if arguments.client else main())
