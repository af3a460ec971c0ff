"""Scale-out on Redis: 1 web + 1 worker against 2 web + 2 workers, the Procfile's processes.

The same load against each side: one load client (this process) posts signed ledger events,
one per card, BATCH events per post, POSTERS posts in flight, round robin over the side's web
processes (`python -m cli serve`, WALLET_RUN_WORKER=0 as on Redis); the side's `python -m cli
worker` processes deliver the pass updates (WALLET_PUSH_DRY_RUN=0) to one fake APNs subprocess
(tests/fakes/apns_server.py's server, HTTP/2 + TLS, client certificates checked). The store is
Redis database 12 (BENCH_REDIS_URL), under a prefix of this run, flushed before and after.
CARDS cards with DEVICES registered devices each are seeded once through the adapter; each
phase posts a new version for every card, so a phase is CARDS events and CARDS x DEVICES
pushes (no coalescing: every card's previous entry was delivered in the phase before).

Per phase, measured from the first post to the last push the fake received (its clock is this
machine's):
  - ledger intake: events accepted (202) / time from the first post to the last answer;
  - push delivery: pushes answered 200 by the fake / time from the first post to the last push;
  - CPU seconds from /proc per process type (web, worker, fake APNs, this load client) and of
    the Redis server (INFO cpu: the whole server, so less the rate it ran at during 1.5 s just
    before, while our processes idled: other clients of the same server), per event; and the
    share of the machine's cores that other processes took meanwhile.
ROUNDS rounds, the sides mirrored every other round (a b, b a): summed per side, a steady drift
in the machine's speed weighs on both alike. Printed: each phase, then the side-by-side table
with the ratio (b)/(a), then what the 2 cores mean and what more cores would give, from the
CPU per event. Nothing is pinned: with 2 cores every process (client, fake, Redis, web,
workers) shares both, which is the point of saying what more cores would give.

Timings are reported, never asserted: `main()` returns 0 unless setup itself fails.
Sizes for a quick try: BENCH_SCALEOUT_CARDS=2000 BENCH_SCALEOUT_ROUNDS=1.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import select
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.process import (
    LEDGER_SECRET,
    PASS_TYPE_ID,
    ROOT,
    TEAM_ID,
    core_busy_seconds,
    cpu_seconds,
    free_port,
    pinned_run,
    service_env,
    start_service,
    stop,
    wait_healthy,
)
from cards.model import Card, Member
from cards.numbers import new_auth_token, new_card_number, new_serial
from ledger.signature import sign
from passes.apple.pki import ensure_dev_pki, issue_server_cert
from store.factory import open_store
from store.port import Store

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
CARDS = int(os.environ.get("BENCH_SCALEOUT_CARDS", "20000"))
DEVICES = 2  # registered devices per card: pushes per event
BATCH = 100  # events per ledger post
POSTERS = 8  # posts in flight from the one load client
ROUNDS = int(os.environ.get("BENCH_SCALEOUT_ROUNDS", "4"))
DRAIN_TIMEOUT = 300.0  # seconds for the last push after the last post
START_TIMEOUT = 30.0
SEED_CHUNK = 500  # cards per create_cards call; registrations per gather
SIDES = ((1, 1), (2, 2))  # (web processes, worker processes)


# -- Redis ------------------------------------------------------------------------------------
def redis_client() -> Any:
    import redis

    return redis.Redis.from_url(REDIS_URL, decode_responses=True)


def flush_db() -> bool:
    """FLUSHDB of our database (12), waiting for lazy freeing to finish; False if Redis is absent."""
    import redis

    client = redis_client()
    try:
        client.flushdb()
        while int(client.info("memory").get("lazyfree_pending_objects", 0)):
            time.sleep(0.05)
        return True
    except (redis.RedisError, OSError) as exc:
        print(f"  Redis at {REDIS_URL} unavailable ({type(exc).__name__}): skipped", flush=True)
        return False
    finally:
        client.close()


def redis_cpu() -> float:
    """CPU seconds of the whole Redis server (user + sys, all its threads) since it started."""
    client = redis_client()
    try:
        info = client.info("cpu")
    finally:
        client.close()
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def store_url(prefix: str) -> str:
    return f"{REDIS_URL}?prefix={prefix}"


# -- fake APNs --------------------------------------------------------------------------------
# tests/fakes/apns_server.py's server in a child process, with a control line on stdin: each
# "poll" answers with the counts so far (and the time of the last 200), "reset" zeroes them.
# Requests are tallied and dropped as they come, so the fake stays small whatever the load.
_FAKE_APNS = r"""
import asyncio, json, sys
from tests.fakes.apns_server import FakeApnsServer

async def main(cert, key, ca):
    server = FakeApnsServer(cert, key, client_ca_file=ca)
    await server.start()
    print(server.port, flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    tally = {"ok": 0, "other": 0, "first_at": 0.0, "last_at": 0.0}
    while line := (await reader.readline()).strip():
        for request in server.requests:
            if request.status == 200:
                tally["ok"] += 1
                tally["last_at"] = request.at
                tally["first_at"] = tally["first_at"] or request.at
            else:
                tally["other"] += 1
        server.requests.clear()
        if line == b"reset":
            tally = {"ok": 0, "other": 0, "first_at": 0.0, "last_at": 0.0}
        print(json.dumps({**tally, "connections": server.connections_opened}), flush=True)
    await server.stop()

asyncio.run(main(*sys.argv[1:4]))
"""


@dataclass(frozen=True)
class Pki:
    certs: Path
    ca: Path
    server_cert: Path
    server_key: Path


def make_pki(tmp: Path) -> Pki:
    certs = tmp / "certs"
    ensure_dev_pki(certs, PASS_TYPE_ID, TEAM_ID)
    cert, key = issue_server_cert(certs, ["127.0.0.1", "localhost"], name="apns-bench")
    return Pki(certs, certs / "ca.pem", Path(cert), Path(key))


class FakeApns:
    def __init__(self, pki: Pki) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _FAKE_APNS, str(pki.server_cert), str(pki.server_key), str(pki.ca)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self._line()
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(f"fake APNs did not start (got {line!r})")
        self.url = f"https://127.0.0.1:{int(line)}"

    def _line(self) -> str:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], START_TIMEOUT)
        return self.proc.stdout.readline() if ready else ""

    def ask(self, command: str = "poll") -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        line = self._line()
        if not line.startswith("{"):
            raise RuntimeError(f"fake APNs stopped answering (got {line!r})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def wait_for(self, expected: int, timeout: float) -> dict[str, Any]:
        """Poll until `expected` pushes got 200 (or `timeout`); the last answer."""
        deadline = time.monotonic() + timeout
        while True:
            answer = self.ask()
            if answer["ok"] >= expected or time.monotonic() > deadline:
                return answer
            time.sleep(0.05)

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()  # EOF: the fake stops
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.send_signal(signal.SIGTERM)
        stop(self.proc)


# -- the service's processes ------------------------------------------------------------------
def redis_env(pki: Pki, prefix: str, port: int, fake_url: str, **extra: str) -> dict[str, str]:
    """Dev settings on Redis, real APNs sender pointed at the fake, no worker in the web process."""
    return service_env(
        pki.certs,
        Path("unused"),
        port,
        WALLET_DATABASE_URL=store_url(prefix),
        WALLET_RUN_WORKER="0",
        WALLET_PUSH_DRY_RUN="0",
        WALLET_APNS_ENDPOINT=fake_url,
        WALLET_APNS_CA_FILE=str(pki.ca),
        **extra,
    )


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`python -m cli worker` (the Procfile's worker line); see wait_worker."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "cli", "worker"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )


def wait_worker(proc: subprocess.Popen[bytes], log: Path, timeout: float = START_TIMEOUT) -> None:
    """Until the worker logged that it started (service/push.py run_standalone_worker)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited:\n{log.read_text()[-3000:]}")
        if "push worker" in log.read_text(errors="replace"):
            return
        time.sleep(0.05)
    stop(proc)
    raise RuntimeError(f"worker did not start:\n{log.read_text()[-3000:]}")


# -- seeding ----------------------------------------------------------------------------------
def bench_card(i: int, run: str, now: float) -> Card:
    return Card(
        number=new_card_number("7790"),
        program="coffee",
        account=f"scale-{run}-{i}",
        serial=new_serial(),
        auth_token=new_auth_token(),
        member=Member(name=f"Scale {i}"),
        created_at=int(now),
        modified_at=int(now),
    )


async def create_cards(store: Store, n: int, now: float) -> list[Card]:
    """n cards through the adapter's create_cards, SEED_CHUNK per call."""
    run = secrets.token_hex(3)
    made: list[Card] = []
    for start in range(0, n, SEED_CHUNK):
        batch = [bench_card(i, run, now) for i in range(start, min(start + SEED_CHUNK, n))]
        made += [card for card, _ in await store.create_cards(batch)]
    return made


async def register(store: Store, rows: Sequence[tuple[str, str, str]], now: float, chunk: int = SEED_CHUNK) -> None:
    """(device id, serial, push token) registrations through the adapter's register_device,
    `chunk` at a time with asyncio.gather (within its connection pool)."""
    for start in range(0, len(rows), chunk):
        await asyncio.gather(
            *(store.register_device(d, PASS_TYPE_ID, s, t, now) for d, s, t in rows[start : start + chunk])
        )


async def _seed(prefix: str) -> list[str]:
    store = await open_store(store_url(prefix))
    now = time.time()
    try:
        cards = await create_cards(store, CARDS, now)
        rows = [(secrets.token_hex(16), c.serial, secrets.token_hex(32)) for c in cards for _ in range(DEVICES)]
        await register(store, rows, now)
        return [c.number for c in cards]
    finally:
        await store.close()


# -- one phase --------------------------------------------------------------------------------
@dataclass
class Phase:
    webs: int
    workers: int
    events: int = 0  # accepted
    intake_seconds: float = 0.0  # first post to last answer
    pushes: int = 0  # 200s at the fake
    push_seconds: float = 0.0  # first post to last push
    cpu: dict[str, float] = field(default_factory=dict)  # process type -> CPU seconds
    wall: float = 0.0
    others: float = 0.0  # cores' worth other processes took meanwhile
    redis_raw: float = 0.0  # the Redis server's CPU in the phase, before taking off its background rate
    problems: dict[str, int] = field(default_factory=dict)


async def _post_all(bases: list[str], numbers: list[str], version: int, run: str) -> tuple[int, float, dict[str, int]]:
    """Every card's event `version`, BATCH per post, POSTERS posts in flight, post k to web
    process k mod len(bases); (accepted, seconds from the first post to the last answer, problems)."""
    limits = httpx.Limits(max_connections=POSTERS, max_keepalive_connections=POSTERS)
    clients = [httpx.AsyncClient(base_url=b, limits=limits, timeout=60.0) for b in bases]
    batches = iter(enumerate(numbers[i : i + BATCH] for i in range(0, len(numbers), BATCH)))
    accepted = 0
    last = 0.0
    problems: dict[str, int] = {}

    async def poster() -> None:
        nonlocal accepted, last
        for k, batch in batches:
            events = [
                {
                    "id": f"{run}-{n}-{version}",
                    "card": n,
                    "version": version,
                    "balance": version,
                    "message": f"+{version}",
                }
                for n in batch
            ]
            body = json.dumps({"events": events}).encode()
            headers = {
                "Content-Type": "application/json",
                "X-Wallet-Signature": sign(LEDGER_SECRET, int(time.time()), body),
            }
            try:
                r = await clients[k % len(clients)].post("/v1/ledger/events", content=body, headers=headers)
            except httpx.HTTPError as exc:
                problems[type(exc).__name__] = problems.get(type(exc).__name__, 0) + len(batch)
                continue
            if r.status_code == 202:
                got = len(r.json()["accepted"])
                accepted += got
                if got < len(batch):
                    problems["not accepted"] = problems.get("not accepted", 0) + len(batch) - got
            else:
                problems[f"HTTP {r.status_code}"] = problems.get(f"HTTP {r.status_code}", 0) + len(batch)
            last = time.time()

    t0 = time.time()
    try:
        await asyncio.gather(*(poster() for _ in range(POSTERS)))
    finally:
        for client in clients:
            await client.aclose()
    return accepted, last - t0, problems


def _phase(pki: Pki, tmp: Path, prefix: str, side: tuple[int, int], numbers: list[str], version: int) -> Phase:
    webs, workers = side
    phase = Phase(webs, workers)
    fake = FakeApns(pki)
    procs: dict[str, list[subprocess.Popen[bytes]]] = {"web": [], "worker": []}
    try:
        bases = []
        for _ in range(webs):
            port = free_port()
            log = tmp / f"web-{port}.log"
            proc = start_service(redis_env(pki, prefix, port, fake.url), port, log, None)
            procs["web"].append(proc)
            bases.append((proc, port, log))
        for i in range(workers):
            log = tmp / f"worker-{version}-{i}.log"
            procs["worker"].append(start_worker(redis_env(pki, prefix, free_port(), fake.url), log))
            wait_worker(procs["worker"][-1], log)
        for proc, port, log in bases:
            wait_healthy(proc, port, log, START_TIMEOUT)
        urls = [f"http://127.0.0.1:{port}" for _, port, _ in bases]
        # Warm-up, not counted: a post to each web process (its first request), pushes through
        # every worker's APNs connections; version 0 of the first cards is below any real one.
        warm = numbers[: BATCH * webs]
        asyncio.run(_post_all(urls, warm, version * 1000, f"warm{version}"))
        fake.wait_for(len(warm) * DEVICES, DRAIN_TIMEOUT)
        # Let the workers settle back to idle; meanwhile the Redis server's CPU is what other
        # clients of it (other databases) take: its rate is taken off the phase's Redis CPU.
        time.sleep(0.5)
        idle0, idle_t0 = redis_cpu(), time.monotonic()
        time.sleep(1.5)
        background = (redis_cpu() - idle0) / (time.monotonic() - idle_t0)
        fake.ask("reset")

        pids = {kind: [p.pid for p in ps] for kind, ps in procs.items()}
        cpu0 = {kind: sum(cpu_seconds(pid) for pid in ps) for kind, ps in pids.items()}
        fake0, redis0, mine0, busy0 = fake.cpu(), redis_cpu(), time.process_time(), core_busy_seconds()
        t0 = time.time()
        run = secrets.token_hex(3)
        phase.events, phase.intake_seconds, phase.problems = asyncio.run(
            _post_all(urls, numbers, version * 1000 + 1, run)
        )
        answer = fake.wait_for(phase.events * DEVICES, DRAIN_TIMEOUT)
        phase.wall = time.time() - t0
        phase.cpu = {kind: sum(cpu_seconds(pid) for pid in ps) - cpu0[kind] for kind, ps in pids.items()}
        phase.cpu["fake APNs"] = fake.cpu() - fake0
        phase.redis_raw = redis_cpu() - redis0
        phase.cpu["Redis"] = max(0.0, phase.redis_raw - background * phase.wall)
        phase.cpu["load client"] = time.process_time() - mine0
        busy1 = core_busy_seconds()
        phase.pushes = answer["ok"]
        phase.push_seconds = answer["last_at"] - t0 if answer["last_at"] else phase.wall
        if answer["other"]:
            phase.problems["fake answered non-200"] = answer["other"]
        if phase.pushes < phase.events * DEVICES:
            phase.problems["pushes missing"] = phase.events * DEVICES - phase.pushes
        ours = sum(phase.cpu.values())
        used = sum(busy1[c] - busy0.get(c, 0.0) for c in busy1)
        phase.others = max(0.0, used - ours) / phase.wall
    finally:
        for ps in procs.values():
            for p in ps:
                stop(p)
        fake.stop()
    return phase


# -- report -----------------------------------------------------------------------------------
KINDS = ("web", "worker", "fake APNs", "Redis", "load client")


def _label(side: tuple[int, int]) -> str:
    return f"{side[0]} web + {side[1]} worker{'s' if side[1] > 1 else ''}"


@dataclass
class Sum:
    events: int = 0
    intake_seconds: float = 0.0
    pushes: int = 0
    push_seconds: float = 0.0
    wall: float = 0.0
    cpu: dict[str, float] = field(default_factory=lambda: dict.fromkeys(KINDS, 0.0))
    others: float = 0.0  # core-seconds

    def add(self, p: Phase) -> None:
        self.events += p.events
        self.intake_seconds += p.intake_seconds
        self.pushes += p.pushes
        self.push_seconds += p.push_seconds
        self.wall += p.wall
        for kind, value in p.cpu.items():
            self.cpu[kind] += value
        self.others += p.others * p.wall

    @property
    def intake(self) -> float:
        return self.events / self.intake_seconds if self.intake_seconds else 0.0

    @property
    def delivery(self) -> float:
        return self.pushes / self.push_seconds if self.push_seconds else 0.0

    def per_event_ms(self, kind: str) -> float:
        return self.cpu[kind] / max(self.events, 1) * 1000


def _print_phase(p: Phase, r: int) -> None:
    cpu = ", ".join(f"{k} {p.cpu[k] / max(p.events, 1) * 1000:.2f}" for k in KINDS)
    print(
        f"  round {r + 1} {_label((p.webs, p.workers)):<20} intake {p.events / max(p.intake_seconds, 1e-9):6.0f} "
        f"events/s ({p.events} in {p.intake_seconds:.1f} s), delivery {p.pushes / max(p.push_seconds, 1e-9):6.0f} "
        f"pushes/s ({p.pushes} by {p.push_seconds:.1f} s); CPU ms/event: {cpu} (Redis before taking off its "
        f"background: {p.redis_raw / max(p.events, 1) * 1000:.2f}); other processes "
        f"{p.others:.2f} cores" + (f"; problems {p.problems}" if p.problems else ""),
        flush=True,
    )


def _report(sums: dict[tuple[int, int], Sum]) -> None:
    a, b = (sums[s] for s in SIDES)

    def ratio(x: float, y: float) -> str:
        return f"{y / x:6.2f}" if x else "     -"

    la, lb = _label(SIDES[0]), _label(SIDES[1])
    print(f"  {'summed over the rounds':<36} {'(a) ' + la:>22} {'(b) ' + lb:>22} {'(b)/(a)':>8}")
    rows: list[tuple[str, float, float, str]] = [
        ("ledger intake, events/s", a.intake, b.intake, "{:22.0f}"),
        ("push delivery, pushes/s", a.delivery, b.delivery, "{:22.0f}"),
    ]
    for kind in KINDS:
        rows.append((f"CPU ms/event, {kind}", a.per_event_ms(kind), b.per_event_ms(kind), "{:22.3f}"))
    total_a = sum(a.per_event_ms(k) for k in KINDS)
    total_b = sum(b.per_event_ms(k) for k in KINDS)
    rows.append(("CPU ms/event, all of the above", total_a, total_b, "{:22.3f}"))
    rows.append(
        ("cores busy with the above (avg)", sum(a.cpu.values()) / a.wall, sum(b.cpu.values()) / b.wall, "{:22.2f}")
    )
    rows.append(("cores other processes took (avg)", a.others / a.wall, b.others / b.wall, "{:22.2f}"))
    for name, x, y, fmt in rows:
        print(f"  {name:<36} {fmt.format(x)} {fmt.format(y)} {ratio(x, y):>8}")
    ncores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    intake_ms = b.per_event_ms("web") + b.per_event_ms("Redis") + b.per_event_ms("load client")
    print(
        f"  {ncores} cores: the load client, the fake APNs, Redis and the service's processes all share them (and "
        f"other processes took {b.others / b.wall:.2f} cores on average during (b)). End to end, an event accepted and "
        f"its {DEVICES} pushes delivered cost {total_b:.2f} ms of CPU in all on side (b), so this machine tops out "
        f"near {ncores * 1000 / total_b:.0f} events/s ({ncores * DEVICES * 1000 / total_b:.0f} pushes/s) end to end "
        "however many web and worker processes run; intake alone (web + Redis + load client, "
        f"{intake_ms:.2f} ms/event) runs ahead while the workers catch up. A ratio (b)/(a) near 1 here says the "
        "machine is full, not that the service does not scale; the CPU per event is the figure that carries over."
    )
    # What more cores would give: the web and worker processes share nothing but Redis, so each
    # kind scales with its process count until Redis (one thread for commands) is the bound.
    web, worker, redis_ms = b.per_event_ms("web"), b.per_event_ms("worker"), b.per_event_ms("Redis")
    print(
        f"  more cores: a web process takes {web:.3f} ms CPU/event, so each core given to a web process adds about "
        f"{1000 / web:.0f} events/s of intake; a worker takes {worker:.3f} ms/event ({worker / DEVICES:.3f} ms/push), "
        f"so each core given to a worker adds about {1000 / worker:.0f} events/s ({DEVICES * 1000 / worker:.0f} "
        f"pushes/s) of delivery; Redis executes commands on one thread at {redis_ms:.3f} ms/event, a ceiling near "
        f"{1000 / redis_ms:.0f} events/s ({DEVICES * 1000 / redis_ms:.0f} pushes/s) for one Redis however many "
        "cores the web and workers get (beyond it: Redis Cluster or one Redis per shard of cards); the load client "
        "and the fake APNs would need their own cores too."
    )


# -- main -------------------------------------------------------------------------------------
def _run(tmp: Path, _cores: tuple[int, int] | None) -> int:
    if not flush_db():
        return 0
    prefix = f"bench-scale-{secrets.token_hex(3)}:"
    try:
        pki = make_pki(tmp)
        t0 = time.perf_counter()
        numbers = asyncio.run(_seed(prefix))
        print(
            f"  {CARDS} cards x {DEVICES} devices seeded on {REDIS_URL} in {time.perf_counter() - t0:.0f} s; per "
            f"phase {CARDS} events ({BATCH} per post, {POSTERS} posts in flight, round robin over the web processes) "
            f"and {CARDS * DEVICES} pushes to the fake APNs; {ROUNDS} rounds, sides mirrored every other round; "
            "nothing pinned",
            flush=True,
        )
        sums = {side: Sum() for side in SIDES}
        version = 0
        for r in range(ROUNDS):
            for side in SIDES if r % 2 == 0 else SIDES[::-1]:
                version += 1
                phase = _phase(pki, tmp, prefix, side, numbers, version)
                _print_phase(phase, r)
                sums[side].add(phase)
        _report(sums)
        return 0
    finally:
        flush_db()


def main() -> int:
    print(
        "Scale-out on Redis: (a) 1 web + 1 worker vs (b) 2 web + 2 workers (python -m cli serve / worker), one "
        "load client posting signed ledger events, pushes to a fake APNs",
        flush=True,
    )
    return pinned_run("scaleout", _run)


if __name__ == "__main__":
    raise SystemExit(main())
