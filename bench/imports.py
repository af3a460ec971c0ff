"""Bulk import of 100 000 members on SQLite through the real service, and how PassKit requests fare meanwhile.

The service runs as `python -m cli serve` (its worker and import runner in-process, SQLite in a temp dir). A
client first measures PassKit `GET /passkit/v1/passes/...` of an existing card alone (the baseline), then posts
a 100 000-row CSV to `POST /v1/cards/import` and, while the job runs, keeps issuing the same PassKit requests.
Reported: the upload's answer time (parse and validation happen before the 202), the time to `done` and rows/s
(target: done within 2 min), and the PassKit p50/p99 during the import against the baseline of the same run.

Timings are reported, never asserted: `main()` always returns 0.
"""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import statistics
import tempfile
import time
import zipfile
from pathlib import Path

import httpx

from bench.process import ISSUER_KEY, PASS_TYPE_ID, TEAM_ID, free_port, service_env, start_service, stop, wait_healthy

ROWS = 100_000
TARGET_SECONDS = 120.0
BASELINE_SECONDS = 5.0
PASSKIT_CONCURRENCY = 4  # a few devices asking for the latest pass at once


def member_csv(rows: int) -> bytes:
    lines = ["account;name;phone;email;balance;tier;locale\n"]
    for i in range(rows):
        digits = f"900{i // 10000 % 1000:03d}{i // 100 % 100:02d}{i % 100:02d}"
        lines.append(f"bench-{i};Участник {i};8 {digits};m{i}@example.ru;{i % 20000};;\n")
    return "".join(lines).encode()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _passkit_load(client: httpx.AsyncClient, url: str, token: str, until: asyncio.Event) -> list[float]:
    latencies: list[float] = []

    async def one() -> None:
        while not until.is_set():
            start = time.perf_counter()
            response = await client.get(url, headers={"Authorization": f"ApplePass {token}"})
            latencies.append(time.perf_counter() - start)
            if response.status_code != 200:
                raise RuntimeError(f"PassKit GET answered {response.status_code}")

    await asyncio.gather(*(one() for _ in range(PASSKIT_CONCURRENCY)))
    return latencies


async def _run(base: str) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {ISSUER_KEY}"}
    async with httpx.AsyncClient(base_url=base, timeout=120.0) as client:
        issued = await client.post(
            "/v1/cards",
            json={"program": "coffee", "account": "bench-passkit", "member": {"name": "Bench"}},
            headers=headers,
        )
        issued.raise_for_status()
        card = issued.json()
        pkpass = await client.get(card["links"]["apple"])
        token = json.loads(zipfile.ZipFile(io.BytesIO(pkpass.content)).read("pass.json"))["authenticationToken"]
        url = f"/passkit/v1/passes/{PASS_TYPE_ID}/{card['serial']}"

        stop_baseline = asyncio.Event()
        asyncio.get_running_loop().call_later(BASELINE_SECONDS, stop_baseline.set)
        baseline = await _passkit_load(client, url, token, stop_baseline)

        raw = member_csv(ROWS)
        done_event = asyncio.Event()
        during_task = asyncio.create_task(_passkit_load(client, url, token, done_event))
        started = time.perf_counter()
        answer = await client.post(
            "/v1/cards/import",
            params={"program": "coffee", "welcome_bonus": "250"},
            content=raw,
            headers={**headers, "Content-Type": "text/csv"},
        )
        accepted = time.perf_counter() - started
        answer.raise_for_status()
        job_id = answer.json()["job"]
        job: dict[str, object] = {}
        peak_rate = 0.0
        while time.perf_counter() - started < 10 * TARGET_SECONDS:
            job = (await client.get(f"/v1/jobs/{job_id}", headers=headers)).json()
            peak_rate = max(peak_rate, float(job.get("rate") or 0.0))  # type: ignore[arg-type]
            if job["state"] in ("done", "failed"):
                break
            await asyncio.sleep(0.5)
        total = time.perf_counter() - started
        done_event.set()
        during = await during_task
        result = await client.get(f"/v1/jobs/{job_id}/result.csv", headers=headers)
        result_rows = result.text.count("\n") - 1
    return {
        "state_done": 1.0 if job.get("state") == "done" else 0.0,
        "accepted_s": accepted,
        "total_s": total,
        "rows_per_s": ROWS / total,
        "job_rate": peak_rate,
        "result_rows": float(result_rows),
        "base_n": float(len(baseline)),
        "base_p50_ms": percentile(baseline, 0.5) * 1000,
        "base_p99_ms": percentile(baseline, 0.99) * 1000,
        "during_n": float(len(during)),
        "during_p50_ms": percentile(during, 0.5) * 1000,
        "during_p99_ms": percentile(during, 0.99) * 1000,
        "during_max_ms": max(during) * 1000,
        "during_mean_ms": statistics.fmean(during) * 1000,
    }


def main() -> int:
    from passes.apple.pki import ensure_dev_pki

    tmp = Path(tempfile.mkdtemp(prefix="bench-imports-"))
    proc = None
    try:
        ensure_dev_pki(tmp / "certs", PASS_TYPE_ID, TEAM_ID)
        port = free_port()
        log = tmp / "service.log"
        proc = start_service(service_env(tmp / "certs", tmp / "wallet.db", port), port, log, None)
        wait_healthy(proc, port, log)
        r = asyncio.run(_run(f"http://127.0.0.1:{port}"))
    finally:
        stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    verdict = "within" if r["state_done"] and r["total_s"] < TARGET_SECONDS else "OVER"
    print(
        f"import {ROWS} rows on SQLite: done={bool(r['state_done'])} in {r['total_s']:.1f} s "
        f"({r['rows_per_s']:.0f} rows/s end to end; the job's own rate {r['job_rate']:.0f} rows/s), "
        f"{verdict} the {TARGET_SECONDS:.0f} s target; 202 after {r['accepted_s']:.1f} s (upload, parse, "
        f"validation, rows stored); result.csv {r['result_rows']:.0f} rows"
    )
    print(
        f"PassKit GET latest pass, {PASSKIT_CONCURRENCY} in flight: baseline p50 {r['base_p50_ms']:.2f} ms "
        f"p99 {r['base_p99_ms']:.2f} ms ({r['base_n']:.0f} requests); during the import p50 "
        f"{r['during_p50_ms']:.2f} ms p99 {r['during_p99_ms']:.2f} ms max {r['during_max_ms']:.1f} ms "
        f"({r['during_n']:.0f} requests); p99 ratio during/baseline "
        f"{r['during_p99_ms'] / r['base_p99_ms']:.1f}x, p50 ratio {r['during_p50_ms'] / r['base_p50_ms']:.1f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
