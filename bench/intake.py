"""Ledger intake: (1) against the devices per card, cards with 1 000 registered devices each
versus cards with 1, in the same run (target: within 10 %); (2) the price of durable
acknowledgements, SQLite synchronous=FULL (the default) against NORMAL, in the same run.

A ledger commit enqueues one entry per changed pass, whatever its devices (the worker expands
it at delivery), so the intake rate must not depend on how many devices hold a pass. The real
service (uvicorn, SQLite, its worker off so that only intake is measured) runs pinned to core
0; this process posts from core 1. The store is seeded before the service starts: CARDS
"small" cards with one device each and CARDS "big" cards with DEVICES devices each. Each phase
posts signed batches of BATCH events (one per card, versions rising) from POSTERS posters for
PHASE_SECONDS, all small or all big; ROUNDS rounds with the order mirrored every other round.
Printed: events/s and post latency p50/p99 per phase, then the big/small ratio of the summed
rates (target >= 0.9).

Timings are reported, never asserted: `main()` returns 0 unless setup itself fails.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.process import (
    LEDGER_SECRET,
    PASS_TYPE_ID,
    TEAM_ID,
    free_port,
    pin_self,
    service_env,
    start_service,
    stop,
    wait_healthy,
)
from bench.process import cores as split_cores
from cards.model import Card, Member
from cards.numbers import new_auth_token, new_card_number, new_serial
from ledger.signature import sign
from passes.apple.pki import ensure_dev_pki
from store.factory import open_store

CARDS = 100
DEVICES = 1000
BATCH = 100
POSTERS = 4
PHASE_SECONDS = 4.0
ROUNDS = 6


@dataclass
class Phase:
    events: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


async def _seed(db: Path) -> tuple[list[str], list[str]]:
    """CARDS small and CARDS big cards; returns their numbers."""
    store = await open_store(f"sqlite:///{db}")
    now = time.time()
    run = secrets.token_hex(3)
    small: list[str] = []
    big: list[str] = []
    try:
        for i in range(2 * CARDS):
            card = Card(
                number=new_card_number("7790"),
                program="coffee",
                account=f"fan-{run}-{i}",
                serial=new_serial(),
                auth_token=new_auth_token(),
                member=Member(name=f"Fan {i}"),
                created_at=int(now),
                modified_at=int(now),
            )
            stored, _ = await store.create_card(card)
            devices = 1 if i < CARDS else DEVICES
            for d in range(devices):
                await store.register_device(f"fan{i}d{d}", PASS_TYPE_ID, stored.serial, f"{i:04x}{d:060x}", now)
            (small if i < CARDS else big).append(stored.number)
        return small, big
    finally:
        await store.close()


async def _phase(client: httpx.AsyncClient, numbers: list[str], versions: dict[str, int], run: str) -> Phase:
    phase = Phase()
    deadline = time.perf_counter() + PHASE_SECONDS

    async def poster() -> None:
        while time.perf_counter() < deadline:
            events = []
            for number in numbers[:BATCH]:
                versions[number] += 1
                v = versions[number]
                events.append(
                    {"id": f"{run}-{number}-{v}", "card": number, "version": v, "balance": v, "message": f"+{v}"}
                )
            body = json.dumps({"events": events}).encode()
            t0 = time.perf_counter()
            r = await client.post(
                "/v1/ledger/events",
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Wallet-Signature": sign(LEDGER_SECRET, int(time.time()), body),
                },
            )
            phase.latencies.append(time.perf_counter() - t0)
            if r.status_code == 202:
                phase.events += len(r.json()["accepted"])

    t0 = time.perf_counter()
    await asyncio.gather(*(poster() for _ in range(POSTERS)))
    phase.seconds = time.perf_counter() - t0
    return phase


async def _measure(sides: list[tuple[str, str, list[str]]]) -> dict[str, list[Phase]]:
    """Phases of each (label, base URL, card numbers) side, ROUNDS rounds, order mirrored."""
    run = secrets.token_hex(3)
    versions = {n: 0 for _, _, numbers in sides for n in numbers}
    limits = httpx.Limits(max_connections=POSTERS, max_keepalive_connections=POSTERS)
    phases: dict[str, list[Phase]] = {label: [] for label, _, _ in sides}
    clients = {label: httpx.AsyncClient(base_url=base, limits=limits, timeout=60.0) for label, base, _ in sides}
    try:
        for label, _, numbers in sides:
            await _phase(clients[label], numbers, versions, run)  # warm-up, not counted
        for r in range(ROUNDS):
            for label, _, numbers in sides if r % 2 == 0 else sides[::-1]:
                phase = await _phase(clients[label], numbers, versions, run)
                phases[label].append(phase)
                print(
                    f"  round {r + 1} {label:<34} {phase.rate:7.0f} events/s  post p50 {phase.pct(0.5):6.1f} ms"
                    f"  p99 {phase.pct(0.99):6.1f} ms",
                    flush=True,
                )
    finally:
        for client in clients.values():
            await client.aclose()
    return phases


def _rate(phases: list[Phase]) -> float:
    return sum(p.events for p in phases) / sum(p.seconds for p in phases)


def _serve(work: Path, certs: Path, url: str, core: int | None) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = service_env(certs, Path("unused"), port, WALLET_RUN_WORKER="0", WALLET_DATABASE_URL=url)
    log = work / f"service-{port}.log"
    proc = start_service(env, port, log, core)
    wait_healthy(proc, port, log)
    return proc, f"http://127.0.0.1:{port}"


def main() -> int:
    cores = split_cores()
    work = Path(tempfile.mkdtemp(prefix="bench-intake-"))
    procs: list[subprocess.Popen[bytes]] = []
    core = cores[0] if cores else None
    try:
        certs = work / "certs"
        ensure_dev_pki(certs, PASS_TYPE_ID, TEAM_ID)
        db = work / "wallet.db"
        t0 = time.perf_counter()
        small, big = asyncio.run(_seed(db))
        print(
            f"1. ledger intake vs devices per card: {CARDS} cards x 1 device and {CARDS} cards x {DEVICES} devices "
            f"(seeded in {time.perf_counter() - t0:.0f} s), batches of {BATCH}, {POSTERS} posters, "
            f"{ROUNDS} rounds of {PHASE_SECONDS:.0f} s per side, worker off, SQLite synchronous=FULL",
            flush=True,
        )
        normal_db = work / "normal.db"
        shutil.copyfile(db, normal_db)  # the same cards, for part 2
        proc, base = _serve(work, certs, f"sqlite:///{db}", core)
        procs.append(proc)
        pin_self(cores[1] if cores else None)
        phases = asyncio.run(_measure([("1 device/card", base, small), (f"{DEVICES} devices/card", base, big)]))
        one, many = _rate(phases["1 device/card"]), _rate(phases[f"{DEVICES} devices/card"])
        p99 = {label: max(p.pct(0.99) for p in ps) for label, ps in phases.items()}
        print(
            f"  summary: 1 device/card {one:.0f} events/s, {DEVICES} devices/card {many:.0f} events/s: ratio "
            f"{many / one:.2f} (target >= 0.9); worst post p99 {p99['1 device/card']:.1f} vs "
            f"{p99[f'{DEVICES} devices/card']:.1f} ms",
            flush=True,
        )
        stop(proc)
        procs.clear()

        print(
            "2. the price of durable acknowledgements: the same intake (1 device/card) on SQLite with the ledger "
            "commit fsynced (synchronous=FULL, the default) vs synchronous=NORMAL, two services side by side",
            flush=True,
        )
        full_db = work / "full.db"
        shutil.copyfile(normal_db, full_db)
        full, full_base = _serve(work, certs, f"sqlite:///{full_db}", core)
        normal, normal_base = _serve(work, certs, f"sqlite:///{normal_db}?synchronous=normal", core)
        procs += [full, normal]
        phases = asyncio.run(
            _measure([("synchronous=FULL", full_base, small), ("synchronous=NORMAL", normal_base, small)])
        )
        full_rate, normal_rate = _rate(phases["synchronous=FULL"]), _rate(phases["synchronous=NORMAL"])
        print(
            f"  summary: FULL {full_rate:.0f} events/s, NORMAL {normal_rate:.0f} events/s: FULL/NORMAL "
            f"{full_rate / normal_rate:.2f}",
            flush=True,
        )
        return 0
    finally:
        for proc in procs:
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
