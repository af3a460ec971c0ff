"""Memory on Redis: what registrations cost in Redis, and a worker's RSS with 1 000 000 of them.

1. Redis `used_memory` (INFO memory) before and after writing registrations through the store
   adapter's register_device (asyncio.gather, REG_CHUNK at a time), on Redis database 12
   (BENCH_REDIS_URL) under a prefix of this run, flushed before and after; the cards exist
   before the first reading. Two shapes, each reported per 100 000 registrations and per
   registration: 100 000 registrations as CARDS/10 cards x 10 devices, then 1 device on each
   of the other cards. Beside the server-wide difference (which other clients of the same
   Redis would disturb), the sum of MEMORY USAGE over exactly the keys register_device writes
   (regs:<serial> hashes, devregs:<device field> sets), split by key kind.
2. The rest up to CARDS x 10 devices = 1 000 000 registrations (the bulk: through the adapter
   when its measured rate finishes them within BULK_BUDGET seconds, else as a pipeline of the
   adapter's own REGISTER_DEVICE script with the very arguments register_device passes it,
   captured from the adapter; the output says which and how long it took); used_memory at 1M.
3. A real `python -m cli worker` (the Procfile's worker, WALLET_PUSH_DRY_RUN=0) against the fake
   APNs subprocess of bench/scaleout.py: its idle RSS (/proc/<pid>/status VmRSS) once started,
   then pass updates enqueued (as ledger intake enqueues them) for SAMPLE cards, SAMPLE x 10
   pushes, VmRSS sampled while it delivers and VmHWM (its peak) after: compared with the target
   (TARGET_MB) and with the idle RSS (ratio). Also the Redis memory the deliveries added
   (pushed:<serial> tags, journal).

Reported, never asserted: `main()` returns 0 unless setup itself fails.
Sizes for a quick try: BENCH_MEMORY_CARDS=10000 BENCH_MEMORY_SAMPLE=1000.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.process import PASS_TYPE_ID, free_port, pinned_run, stop
from bench.scaleout import (
    FakeApns,
    create_cards,
    flush_db,
    make_pki,
    redis_env,
    register,
    start_worker,
    store_url,
    wait_worker,
)
from push.messages import PassUpdate, entry
from store.factory import open_store
from store.redis import RedisStore

CARDS = int(os.environ.get("BENCH_MEMORY_CARDS", "100000"))
DEVICES = 10  # per card in the end: CARDS x DEVICES registrations
SAMPLE = int(os.environ.get("BENCH_MEMORY_SAMPLE", "10000"))  # cards whose pass updates the worker delivers
TARGET_MB = 150.0
REG_CHUNK = 1000  # register_device calls in flight (the adapter's pool has 200 connections)
PIPE_CHUNK = 5000  # script calls per pipeline in the bulk path
BULK_BUDGET = float(
    os.environ.get("BENCH_MEMORY_BULK_BUDGET", "180")
)  # seconds the bulk of the 1M may take through the adapter before the pipeline is used
RSS_EVERY = 0.2  # seconds between VmRSS samples
DRAIN_TIMEOUT = 900.0


def _used_memory() -> int:
    from bench.scaleout import redis_client

    client = redis_client()
    try:
        return int(client.info("memory")["used_memory"])
    finally:
        client.close()


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process in bytes (0 when it is gone)."""
    found = {"VmRSS": 0, "VmHWM": 0}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in found:
                found[name] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return found


Row = tuple[str, str, str]  # (device id, serial, push token)


def _rows(serials: Sequence[str], devices: int) -> list[Row]:
    # device library identifiers and push tokens of the lengths Apple's have (32 and 64 hex)
    return [(secrets.token_hex(16), s, secrets.token_hex(32)) for s in serials for _ in range(devices)]


async def _key_usage(store: RedisStore, rows: Sequence[Row]) -> dict[str, int]:
    """MEMORY USAGE (every element, SAMPLES 0) of the keys register_device wrote for `rows`."""
    from store.redis import _reg_field

    serials = list(dict.fromkeys(s for _, s, _ in rows))
    fields = [_reg_field(d, PASS_TYPE_ID) for d, _, _ in rows]
    usage: dict[str, int] = {}
    for kind, keys in (
        ("regs:<serial> hashes", [f"regs:{s}" for s in serials]),
        ("devregs:<device> sets", [f"devregs:{f}" for f in fields]),
    ):
        total = 0
        for start in range(0, len(keys), PIPE_CHUNK):
            async with store.client.pipeline(transaction=False) as pipe:
                for key in keys[start : start + PIPE_CHUNK]:
                    pipe.memory_usage(store.prefix + key, samples=0)
                total += sum(int(v or 0) for v in await pipe.execute())
        usage[kind] = total
    return usage


async def _register_pipelined(store: RedisStore, rows: Sequence[Row], now: float) -> None:
    """The adapter's register_device for each row, its REGISTER_DEVICE script calls captured
    (the exact arguments it passes) and run in pipelines of PIPE_CHUNK: the same writes."""
    script = store._scripts["REGISTER_DEVICE"]
    calls: list[tuple[Any, ...]] = []

    async def capture(name: str, *args: Any) -> int:
        assert name == "REGISTER_DEVICE"
        calls.append(args)
        return 1

    for start in range(0, len(rows), PIPE_CHUNK):
        calls.clear()
        store._script = capture  # type: ignore[method-assign]  # on this instance only, just for the capture
        try:
            for d, s, t in rows[start : start + PIPE_CHUNK]:
                await store.register_device(d, PASS_TYPE_ID, s, t, now)
        finally:
            del store._script
        async with store.client.pipeline(transaction=False) as pipe:
            for args in calls:
                await script(args=[store.prefix, *args], client=pipe)
            await pipe.execute()


async def _write(prefix: str) -> list[str]:
    store = await open_store(store_url(prefix))
    assert isinstance(store, RedisStore)
    now = time.time()
    try:
        t0 = time.perf_counter()
        cards = await create_cards(store, CARDS, now)
        serials = [c.serial for c in cards]
        print(f"  {CARDS} cards created in {time.perf_counter() - t0:.0f} s (before the first reading)", flush=True)
        tenth = CARDS // 10
        steps = [
            (f"{tenth} cards x {DEVICES} devices", _rows(serials[:tenth], DEVICES)),
            (f"{CARDS - tenth} cards x 1 device", _rows(serials[tenth:], 1)),
        ]
        print("1. Redis used_memory per registration, written through the adapter's register_device", flush=True)
        written, rate = 0, 0.0
        start_memory = _used_memory()
        for label, rows in steps:
            before = _used_memory()
            t0 = time.perf_counter()
            await register(store, rows, now, REG_CHUNK)
            took = time.perf_counter() - t0
            after = _used_memory()
            rate = len(rows) / took
            written += len(rows)
            usage = await _key_usage(store, rows)
            per = (after - before) / len(rows)
            split = ", ".join(f"{kind} {v / len(rows):.0f} B" for kind, v in usage.items())
            print(
                f"  {label}: {len(rows)} registrations in {took:.1f} s ({rate:.0f}/s); used_memory "
                f"+{_mb(after - before)} = {_mb(per * 100_000)} per 100 000 registrations, {per:.0f} B per "
                f"registration; MEMORY USAGE of the keys written: {sum(usage.values()) / len(rows):.0f} B per "
                f"registration ({split})",
                flush=True,
            )
        print(
            "  (used_memory is the whole server: a step also pays for the keyspace's table doubling when the key "
            "count crosses a power of two, 8 B a slot, and sees other clients' databases; MEMORY USAGE counts "
            "exactly the keys written. devregs:<device> is one key per device, a set with one serial.)",
            flush=True,
        )
        rest = _rows(serials[tenth:], DEVICES - 1)
        projected = len(rest) / rate
        via = (
            "the adapter's register_device"
            if projected <= BULK_BUDGET
            else "pipelines of the adapter's REGISTER_DEVICE script calls"
        )
        print(
            f"2. the other {len(rest)} registrations up to {written + len(rest)}: through {via} (the adapter at "
            f"{rate:.0f}/s would take {projected:.0f} s)",
            flush=True,
        )
        t0 = time.perf_counter()
        if projected <= BULK_BUDGET:
            await register(store, rest, now, REG_CHUNK)
        else:
            await _register_pipelined(store, rest, now)
        took = time.perf_counter() - t0
        written += len(rest)
        total = _used_memory()
        per = (total - start_memory) / written
        print(
            f"  written in {took:.0f} s ({len(rest) / took:.0f}/s); {written} registrations: used_memory "
            f"{_mb(total)} in all, +{_mb(total - start_memory)} for the registrations = {_mb(per * 100_000)} per "
            f"100 000, {per:.0f} B per registration",
            flush=True,
        )
        regs = sum([await store.count_registrations(s) for s in serials[:3]])
        if regs != 3 * DEVICES:
            print(f"  warning: the first cards hold {regs} registrations, expected {3 * DEVICES}")
        return serials
    finally:
        await store.close()


async def _pushed_usage(prefix: str, serials: Sequence[str]) -> int:
    """MEMORY USAGE of the pushed:<serial> hashes (a registration's last pushed tag)."""
    store = await open_store(store_url(prefix))
    assert isinstance(store, RedisStore)
    try:
        total = 0
        for start in range(0, len(serials), PIPE_CHUNK):
            async with store.client.pipeline(transaction=False) as pipe:
                for serial in serials[start : start + PIPE_CHUNK]:
                    pipe.memory_usage(f"{prefix}pushed:{serial}", samples=0)
                total += sum(int(v or 0) for v in await pipe.execute())
        return total
    finally:
        await store.close()


async def _enqueue(prefix: str, serials: Sequence[str]) -> None:
    """Pass updates for `serials`, as ledger intake's fanout enqueues them."""
    store = await open_store(store_url(prefix))
    try:
        now = time.time()
        for start in range(0, len(serials), 500):
            await store.enqueue([entry(PassUpdate(PASS_TYPE_ID, s)) for s in serials[start : start + 500]], now)
    finally:
        await store.close()


def _worker(tmp: Path, prefix: str, serials: list[str]) -> None:
    sample = serials[:SAMPLE]
    expected = len(sample) * DEVICES
    pki = make_pki(tmp)
    fake = FakeApns(pki)
    proc: subprocess.Popen[bytes] | None = None
    try:
        log = tmp / "worker.log"
        proc = start_worker(redis_env(pki, prefix, free_port(), fake.url), log)
        wait_worker(proc, log)
        time.sleep(3.0)  # settled: its loops (outbox, geo jobs, imports) idle
        idle = _status(proc.pid)
        print(
            f"3. worker RSS (python -m cli worker, {CARDS * DEVICES} registrations in the store): idle "
            f"{_mb(idle['VmRSS'])} (VmHWM {_mb(idle['VmHWM'])}); delivering pass updates of {len(sample)} cards "
            f"x {DEVICES} devices = {expected} pushes to the fake APNs",
            flush=True,
        )
        memory0 = _used_memory()
        t0 = time.time()
        asyncio.run(_enqueue(prefix, sample))
        enqueued = time.time() - t0
        peak, samples, answer = 0, [], fake.ask()
        deadline = time.monotonic() + DRAIN_TIMEOUT
        last_poll = 0.0
        while answer["ok"] < expected and time.monotonic() < deadline and proc.poll() is None:
            rss = _status(proc.pid)["VmRSS"]
            samples.append(rss)
            peak = max(peak, rss)
            if time.monotonic() - last_poll > 1.0:
                answer, last_poll = fake.ask(), time.monotonic()
            time.sleep(RSS_EVERY)
        answer = fake.wait_for(expected, 5.0)
        took = (answer["last_at"] or time.time()) - t0
        time.sleep(1.0)
        after = _status(proc.pid)
        added = _used_memory() - memory0
        pushed = asyncio.run(_pushed_usage(prefix, sample))
        hwm = after["VmHWM"]
        verdict = "within" if hwm < TARGET_MB * 1e6 else "ABOVE"
        other = f", {answer['other']} answered non-200" if answer["other"] else ""
        print(
            f"  delivered {answer['ok']} of {expected} pushes in {took:.1f} s ({answer['ok'] / max(took, 1e-9):.0f}/s; "
            f"enqueueing took {enqueued:.1f} s of it){other}",
            flush=True,
        )
        median = sorted(samples)[len(samples) // 2] if samples else 0
        print(
            f"  worker VmRSS while delivering: median {_mb(median)}, highest sample {_mb(peak)}; VmHWM (peak) "
            f"{_mb(hwm)}: {verdict} the target {TARGET_MB:.0f} MB; peak / idle RSS = {hwm / max(idle['VmRSS'], 1):.2f}"
            f"; after delivery VmRSS {_mb(after['VmRSS'])}",
            flush=True,
        )
        print(
            f"  Redis: used_memory {added / 1e6:+.1f} MB over the deliveries (pushed:<serial> tags, the bounded "
            f"journal, less the outbox entries gone); MEMORY USAGE of the pushed:<serial> hashes {_mb(pushed)}, "
            f"{pushed / max(expected, 1):.0f} B per registration once pushed",
            flush=True,
        )
    finally:
        stop(proc)
        fake.stop()


def _run(tmp: Path, _cores: tuple[int, int] | None) -> int:
    if not flush_db():
        return 0
    prefix = f"bench-mem-{secrets.token_hex(3)}:"
    try:
        t0 = time.perf_counter()
        serials = asyncio.run(_write(prefix))
        print(f"  (all {CARDS * DEVICES} registrations written in {time.perf_counter() - t0:.0f} s)", flush=True)
        _worker(tmp, prefix, serials)
        return 0
    finally:
        flush_db()


def main() -> int:
    print(
        f"Memory on Redis: used_memory per 100 000 registrations; worker RSS with {CARDS * DEVICES} registrations "
        f"(target < {TARGET_MB:.0f} MB)",
        flush=True,
    )
    return pinned_run("memory", _run)


if __name__ == "__main__":
    raise SystemExit(main())
