"""The service as real processes, as production runs them (Procfile): `python -m cli serve` web
processes and, on Redis, `python -m cli worker` push workers; each one can be SIGKILLed (no
shutdown handlers run, as in a crash) and started again on the same port and environment."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 60.0  # seconds a process gets to answer /healthz (two busy cores: imports are slow)


@dataclass
class ServiceProcess:
    name: str  # "web-0", "worker-1", "service" (SQLite: serves and pushes)
    role: str  # "web" (answers HTTP, maybe pushes too) or "worker"
    env: dict[str, str]
    log: Path
    port: int | None = None
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def spawn(self) -> None:
        command = [sys.executable, "-m", "cli"]
        env = dict(self.env)
        if self.role == "web":
            command += ["serve", "--log-level", "warning"]
            env.update(HOST="127.0.0.1", PORT=str(self.port))
        else:
            command += ["worker"]
        with open(self.log, "ab") as out:
            out.write(f"\n--- start {self.starts + 1} at {time.time():.3f}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.starts += 1

    async def wait_ready(self, http: httpx.AsyncClient, timeout: float = START_TIMEOUT) -> None:
        """A web process: until /healthz answers; a worker: until it has not died for a moment."""
        deadline = time.monotonic() + timeout
        if self.role != "web":
            await asyncio.sleep(0.2)
            if not self.alive():
                raise RuntimeError(f"{self.name} exited at start:\n{self.tail()}")
            return
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited at start:\n{self.tail()}")
            try:
                if (await http.get(f"{self.base}/healthz", timeout=1.0)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer /healthz within {timeout:.0f} s:\n{self.tail()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@dataclass
class Killing:
    kills: list[tuple[float, str]] = field(default_factory=list)  # (time, process name)
    restarts: int = 0
    downtime: float = 0.0  # seconds from a kill to its process being ready again, summed
    during_posts: int = 0  # kills of a web process while a ledger post was in flight


class Cluster:
    def __init__(self, processes: list[ServiceProcess]) -> None:
        self.processes = processes
        self.http = httpx.AsyncClient()
        self.killing = Killing()

    @property
    def webs(self) -> list[ServiceProcess]:
        return [p for p in self.processes if p.role == "web"]

    def bases(self) -> list[str]:
        return [p.base for p in self.webs]

    async def start(self) -> None:
        for p in self.processes:
            p.spawn()
        await asyncio.gather(*(p.wait_ready(self.http) for p in self.processes))

    async def kill_and_restart(
        self, rng: random.Random, process: ServiceProcess | None = None, in_flight: Callable[[], int] | None = None
    ) -> None:
        victim = process or rng.choice(self.processes)
        if victim.role == "web" and in_flight is not None and rng.random() < 0.5:
            # half the web kills wait (a moment at most) for a ledger post in flight: its commit may be
            # done and its 202 lost, the case the ledger's retry with the same ids is for
            deadline = time.monotonic() + 2.0
            while in_flight() == 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            if in_flight():
                await asyncio.sleep(rng.uniform(0.0, 0.05))  # before, during or after its commit
                self.killing.during_posts += in_flight() > 0
        t0 = time.monotonic()
        victim.kill()
        self.killing.kills.append((time.time(), victim.name))
        await asyncio.sleep(rng.uniform(0.0, 0.5))  # down a moment, as a crashed process is until restarted
        victim.spawn()
        await victim.wait_ready(self.http)
        self.killing.restarts += 1
        self.killing.downtime += time.monotonic() - t0

    async def killer(
        self,
        rng: random.Random,
        kills: int,
        interval: float,
        hurry: asyncio.Event,
        in_flight: Callable[[], int] | None = None,
    ) -> None:
        """`kills` SIGKILLs of a random process, each restarted, at random intervals around
        `interval` seconds (shorter once `hurry` is set: the load is over, the rest fall in the drain)."""
        for _ in range(kills):
            pause = rng.uniform(0.3, 1.7) * (interval if not hurry.is_set() else 1.0)
            try:
                await asyncio.wait_for(hurry.wait(), pause)
                await asyncio.sleep(rng.uniform(0.3, 1.0))  # hurried: still a random moment
            except TimeoutError:
                pass
            await self.kill_and_restart(rng, in_flight=None if hurry.is_set() else in_flight)

    async def ensure_running(self) -> None:
        for p in self.processes:
            if not p.alive():
                p.spawn()
                await p.wait_ready(self.http)
                self.killing.restarts += 1

    async def close(self) -> None:
        for p in self.processes:
            p.stop()
        await self.http.aclose()
