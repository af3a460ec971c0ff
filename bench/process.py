"""Process plumbing the benchmarks share: cores and pinning, CPU accounting from /proc, and
starting the real service as a uvicorn subprocess (as tests/web/conftest.py does for tests)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
PASS_TYPE_ID = "pass.bench.wallet.loyalty"
TEAM_ID = "BENCHTEAM1"
ISSUER_KEY = "issuer-key-" + "b" * 24
LEDGER_SECRET = "ledger-secret-" + "b" * 24


def cores() -> tuple[int, int] | None:
    """(measured core, other core), or None when there are not two cores to split."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    available = sorted(os.sched_getaffinity(0))
    return (available[0], available[1]) if len(available) >= 2 else None


def pinned_run(name: str, run: Callable[[Path, tuple[int, int] | None], int]) -> int:
    """A bench's main: `run(tmp, cores)` in a fresh temporary folder; afterwards every thread's
    core mask is put back (the next bench in this process picks its own cores) and the folder
    removed; the time taken is printed."""
    split = cores()
    if split is None:
        print("  note: fewer than two cores; nothing is pinned, numbers include contention")
    original = os.sched_getaffinity(0) if split else None
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    started = time.perf_counter()
    try:
        status = run(tmp, split)
    finally:
        if original is not None:
            for tid in os.listdir("/proc/self/task"):
                try:
                    os.sched_setaffinity(int(tid), original)
                except OSError:
                    pass
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"  (bench.{name} took {time.perf_counter() - started:.0f} s)")
    return status


def pin(pid: int, core: int | None) -> None:
    """Pin a process; threads it starts later inherit the mask."""
    if core is not None:
        try:
            os.sched_setaffinity(pid, {core})
        except OSError:
            pass


def pin_self(core: int | None) -> None:
    """Every thread of this process: sched_setaffinity(0) would move the calling thread only."""
    if core is None:
        return
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), {core})
        except OSError:
            pass  # a thread that just ended


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a whole process (all threads) from /proc; 0.0 where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    # after the ")" closing comm, utime and stime are the 12th and 13th fields
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def core_busy_seconds() -> dict[int, float]:
    """CPU seconds each core spent busy since boot (/proc/stat): with our own processes'
    CPU subtracted, what other processes took from the cores we measure on."""
    busy: dict[int, float] = {}
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return busy
    for line in lines:
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit():
            values = [int(v) for v in fields]
            idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
            guest = sum(values[8:])  # guest time is already counted in user/nice
            busy[int(name[3:])] = (sum(values) - idle - guest) / os.sysconf("SC_CLK_TCK")
    return busy


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def stop(proc: subprocess.Popen[Any] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def service_env(certs: Path, db: Path, port: int, **extra: str) -> dict[str, str]:
    """The service's environment for a bench run: dev, SQLite, in-process worker, dry run
    unless `extra` says otherwise."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WALLET_")}
    env.update(
        {
            "WALLET_ENV": "dev",
            "WALLET_CERTS_DIR": str(certs),
            "WALLET_DATABASE_URL": f"sqlite:///{db}",
            "WALLET_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "WALLET_PASS_TYPE_ID": PASS_TYPE_ID,
            "WALLET_TEAM_ID": TEAM_ID,
            "WALLET_API_KEYS": f"issuer:{ISSUER_KEY}",
            "WALLET_LEDGER_SECRET": LEDGER_SECRET,
            "WALLET_PUSH_DRY_RUN": "1",
            "WALLET_RUN_WORKER": "1",
            # benchmarks measure throughput, not the abuse bounds (many devices per pass, fast)
            "WALLET_MAX_DEVICES_PER_PASS": "1000",
            "WALLET_RATE_PASSKIT_REGISTER": "100000000/minute",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def start_service(env: dict[str, str], port: int, log: Path, core: int | None) -> subprocess.Popen[bytes]:
    """The web process as production runs it (`python -m cli serve`: h11 with the request-head
    bound, the connection bound), pinned to `core`; not yet waited for (see wait_healthy)."""
    env = {**env, "HOST": "127.0.0.1", "PORT": str(port)}
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "serve", "--log-level", "warning"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    pin(proc.pid, core)
    return proc


def wait_healthy(proc: subprocess.Popen[bytes], port: int, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"service exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    stop(proc)
    raise RuntimeError(f"service did not start:\n{log.read_text()[-3000:]}")
