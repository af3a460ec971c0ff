"""One chaos run on one store: set up, load while killing, drain, check, summarize.

1. A dev PKI, the fake APNs (chaos/apns.py, real TLS) and the service processes
   (chaos/cluster.py) with WALLET_PUSH_DRY_RUN=0 pointed at the fake.
2. `cards` cards issued over the issuer API; each pass downloaded through its signed link;
   `devices` devices registered through the PassKit API, spread over the cards (device i holds
   card i mod cards, ~3 per card at the full size).
3. `clients` ledger clients (chaos/ledger.py) post `events` signed events in batches, paced at
   `rate` events/s (default: each card changes about once every 2 s, as a busy but real
   ledger; a card changed many times a second would only test Last-Modified's one-second
   resolution); meanwhile `kills` SIGKILLs of a random process, each restarted. Devices sync on
   each push (chaos/devices.py).
4. After the load and the kills, wait (up to `drain_timeout`) for `wallet_outbox_pending` 0,
   every device idle and no push for a moment.
5. Check, from the service: every event answered 202; every card at its highest accepted
   version (issuer API), its registrations intact; every device pushed after its card's last
   change and holding that version; no device handed one tag (serials `lastUpdated` or a pass's
   `Last-Modified`) twice, nor an answer PassKit does not allow; outbox 0; no dead letter (admin
   API); and last, every applied event present: posted again, each one is answered `duplicate`.

Last-Modified has whole seconds: a card changed several times within a second keeps a stamp ahead
of the clock and is served with an older date (cards/model.py, rules 1-3), so a device syncing
twice in that second can be handed the same Last-Modified (even the same pass) again, by design.
Paced as by default that never happens, and the check is strict; `--rate 0` (full speed) with
few cards shows it.
"""

from __future__ import annotations

import asyncio
import functools
import os
import random
import re
import secrets
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from chaos.apns import ApnsProcess, Push
from chaos.cluster import ROOT, Cluster, ServiceProcess
from chaos.devices import Device, Fleet, pass_json
from chaos.ledger import Event, LedgerStats, make_events, post_batch, run_clients
from passes.apple.pki import ensure_dev_pki, issue_server_cert

PASS_TYPE_ID = "pass.chaos.wallet.loyalty"
TEAM_ID = "CHAOSTEAM1"
ISSUER_KEY = "issuer-key-" + "c" * 24
ADMIN_KEY = "admin-key-" + "c" * 24
LEDGER_SECRET = "ledger-secret-" + "c" * 24
DEFAULT_REDIS_URL = os.environ.get("CHAOS_REDIS_URL", "redis://127.0.0.1:6379/11")
LEASE_SECONDS = "5"  # a killed worker's leased entries are due again after this (default 30)
QUIET_SECONDS = 1.5  # drained: outbox 0, devices idle and no push for this long
SAMPLES = 5  # offending items named per failed check

T = TypeVar("T")


@dataclass
class Config:
    store: str = "sqlite"
    events: int = 10_000
    cards: int = 1_000
    devices: int = 3_000
    clients: int = 4
    kills: int = 20
    seed: int = 1
    batch: int = 25
    rate: float | None = None  # events/s; None: cards / 2
    drain_timeout: float = 600.0
    redis_url: str = DEFAULT_REDIS_URL
    keep: bool = False  # keep the work folder (logs, SQLite file) even when every check passed
    device_concurrency: int = 24
    log: Callable[[str], None] = print

    @property
    def pace(self) -> float:
        return self.rate if self.rate is not None else self.cards / 2.0


def expected_load_seconds(config: Config) -> float:
    """How long the load should take, to spread the kills over it (unpaced: a guess of 200 events/s)."""
    return config.events / (config.pace if config.pace > 0 else 200.0)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Report:
    store: str
    checks: list[Check] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    work: Path | None = None

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def check(self, name: str, bad: list[str], total: int, what: str) -> None:
        detail = f"{total - len(bad)}/{total} {what}"
        if bad:
            detail += "; e.g. " + "; ".join(bad[:SAMPLES])
        self.checks.append(Check(name, not bad, detail))

    def summary(self) -> str:
        f = self.figures
        lines = [f"chaos run on {self.store}: {'PASS' if self.ok else 'FAIL'}"]
        for key, value in f.items():
            lines.append(f"  {key:<22} {value}")
        for c in self.checks:
            lines.append(f"  [{'PASS' if c.ok else 'FAIL'}] {c.name}: {c.detail}")
        if self.work is not None:
            lines.append(f"  work folder (logs): {self.work}")
        return "\n".join(lines)


async def gather_limited(n: int, jobs: Iterable[Awaitable[T]]) -> list[T]:
    gate = asyncio.Semaphore(n)

    async def one(job: Awaitable[T]) -> T:
        async with gate:
            return await job

    return list(await asyncio.gather(*(one(j) for j in jobs)))


async def retrying(call: Callable[[], Awaitable[httpx.Response]], ok: Iterable[int], tries: int = 60) -> httpx.Response:
    """A setup or check call, again after a connection error or a 5xx (a process may be restarting)."""
    accepted = set(ok)
    last = ""
    for attempt in range(tries):
        try:
            response = await call()
            if response.status_code in accepted:
                return response
            last = f"HTTP {response.status_code}: {response.text[:300]}"
            if response.status_code < 500 and response.status_code != 429:
                break
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        await asyncio.sleep(min(1.0, 0.05 * 2**attempt))
    raise RuntimeError(f"call failed: {last}")


def service_env(
    config: Config, work: Path, certs: Path, apns: ApnsProcess, database_url: str, public: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WALLET_")}
    env.update(
        {
            "WALLET_ENV": "dev",
            "WALLET_CERTS_DIR": str(certs),
            "WALLET_DATABASE_URL": database_url,
            "WALLET_PUBLIC_URL": public,
            "WALLET_PASS_TYPE_ID": PASS_TYPE_ID,
            "WALLET_TEAM_ID": TEAM_ID,
            "WALLET_API_KEYS": f"issuer:{ISSUER_KEY},admin:{ADMIN_KEY}",
            "WALLET_LEDGER_SECRET": LEDGER_SECRET,
            "WALLET_PUSH_DRY_RUN": "0",
            "WALLET_APNS_ENDPOINT": apns.url,
            "WALLET_APNS_CA_FILE": str(certs / "ca.pem"),
            "WALLET_WORKER_LEASE_SECONDS": LEASE_SECONDS,
            # every simulated device and the ledger are 127.0.0.1: the per-address and per-pass limits are
            # not what this run is about
            "WALLET_RATE_PAGES": "1000000/minute",
            "WALLET_RATE_PASSKIT": "1000000/minute",
            "WALLET_RATE_PASSKIT_REGISTER": "1000000/minute",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def build_cluster(config: Config, work: Path, certs: Path, apns: ApnsProcess, run: str) -> tuple[Cluster, str | None]:
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    if config.store == "sqlite":
        port = free_port()
        env = service_env(config, work, certs, apns, f"sqlite:///{work / 'wallet.db'}", f"http://127.0.0.1:{port}")
        env["WALLET_RUN_WORKER"] = "1"
        return Cluster([ServiceProcess("service", "web", env, logs / "service.log", port)]), None
    prefix = f"chaos:{run}:"
    url = f"{config.redis_url}?prefix={prefix}"
    ports = [free_port(), free_port()]
    env = service_env(config, work, certs, apns, url, f"http://127.0.0.1:{ports[0]}")
    env["WALLET_RUN_WORKER"] = "0"
    processes = [ServiceProcess(f"web-{i}", "web", env, logs / f"web-{i}.log", port) for i, port in enumerate(ports)]
    processes += [ServiceProcess(f"worker-{i}", "worker", env, logs / f"worker-{i}.log") for i in range(2)]
    return Cluster(processes), prefix


async def delete_redis_prefix(url: str, prefix: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        for start in range(0, len(keys), 1000):
            await client.delete(*keys[start : start + 1000])
    finally:
        await client.aclose()


_PENDING = re.compile(rb"^wallet_outbox_pending (\S+)$", re.M)


async def outbox_pending(http: httpx.AsyncClient, base: str) -> int | None:
    try:
        response = await http.get(f"{base}/metrics", timeout=5.0)
    except httpx.HTTPError:
        return None
    found = _PENDING.search(response.content)
    return int(float(found.group(1))) if found else None


@dataclass
class Issued:
    number: str
    serial: str
    auth_token: str
    last_modified: str | None


async def issue_cards(http: httpx.AsyncClient, base: str, run: str, n: int) -> list[Issued]:
    auth = {"Authorization": f"Bearer {ISSUER_KEY}"}

    async def one(i: int) -> Issued:
        body = {"program": "coffee", "account": f"chaos-{run}-{i}", "member": {"name": f"Chaos {i}"}, "locale": "en"}
        made = await retrying(lambda: http.post(f"{base}/v1/cards", json=body, headers=auth), (200, 201))
        link = made.json()["links"]["apple"]
        got = await retrying(lambda: http.get(link), (200,))
        info = pass_json(got.content)
        return Issued(
            made.json()["card"],
            str(info["serialNumber"]),
            str(info["authenticationToken"]),
            got.headers.get("last-modified"),
        )

    return await gather_limited(8, (one(i) for i in range(n)))


def expected_versions(events: list[Event]) -> dict[str, Event]:
    """Per card, the applied event of its highest version (the card's last change)."""
    last: dict[str, Event] = {}
    for e in events:
        if e.applied and (e.card not in last or e.version > last[e.card].version):
            last[e.card] = e
    return last


@dataclass
class Phase:
    """What the load phase left for the checks."""

    issued: list[Issued]
    devices: list[Device]
    fleet: Fleet
    events: list[Event]
    stats: LedgerStats
    seconds: dict[str, float] = field(default_factory=dict)  # setup, load, drain


async def run_chaos(config: Config) -> Report:
    """The whole run on `config.store`; the report holds every check and the figures. The work
    folder (logs of every process start, the SQLite file) is kept when a check fails."""
    rng = random.Random(config.seed)
    run = f"{config.seed}x{secrets.token_hex(3)}"
    work = Path(tempfile.mkdtemp(prefix=f"chaos-{config.store}-"))
    report = Report(config.store)
    started = time.monotonic()
    certs = work / "certs"
    ensure_dev_pki(certs, PASS_TYPE_ID, TEAM_ID)
    cert, key = issue_server_cert(certs, ["127.0.0.1", "localhost"], name="apns-chaos")
    apns = await ApnsProcess.start(cert, key, certs / "ca.pem", ROOT)
    cluster, prefix = build_cluster(config, work, certs, apns, run)
    http = httpx.AsyncClient(timeout=15.0, limits=httpx.Limits(max_connections=64, max_keepalive_connections=64))
    keep = config.keep
    fleets: list[Fleet] = []
    try:
        config.log(f"[{config.store}] starting {', '.join(p.name for p in cluster.processes)} (work folder {work})")
        await cluster.start()
        phase = await load(config, run, rng, http, cluster, apns, fleets)
        await check_all(report, phase, http, cluster.bases()[0], apns)
        report.figures.update(figures(config, phase, cluster, apns, time.monotonic() - started))
        return report
    except BaseException:
        keep = True
        raise
    finally:
        for fleet in fleets:
            fleet.cancel()
        await http.aclose()
        await cluster.close()
        await apns.stop()
        if prefix is not None:
            await delete_redis_prefix(config.redis_url, prefix)
        if keep or not report.ok:
            report.work = work
        else:
            shutil.rmtree(work, ignore_errors=True)


async def load(
    config: Config,
    run: str,
    rng: random.Random,
    http: httpx.AsyncClient,
    cluster: Cluster,
    apns: ApnsProcess,
    fleets: list[Fleet],
) -> Phase:
    """Cards, passes and registrations; then the ledger load with the killer; then the drain."""
    say = config.log
    bases = cluster.bases()
    t0 = time.monotonic()
    issued = await issue_cards(http, bases[0], run, config.cards)
    devices = []
    for i in range(config.devices):
        card = issued[i % len(issued)]
        devices.append(
            Device(
                device_id=f"chaos{run}d{i}",
                token=f"{rng.getrandbits(256):064x}",
                card=card.number,
                serial=card.serial,
                auth_token=card.auth_token,
                pass_type=PASS_TYPE_ID,
                bases=bases,
                index=i,
                last_modified=card.last_modified,
                modified=[card.last_modified] if card.last_modified else [],
            )
        )
    statuses = await gather_limited(8, (register(http, d) for d in devices))
    if any(s != 201 for s in statuses):
        raise RuntimeError(f"registrations answered {Counter(statuses)}")
    seconds = {"setup": time.monotonic() - t0}
    say(f"[{config.store}] {len(issued)} cards issued, {len(devices)} devices registered in {seconds['setup']:.0f} s")

    fleet = Fleet(devices, http, rng, asyncio.Semaphore(config.device_concurrency))
    fleets.append(fleet)
    last_push = [time.monotonic()]

    def on_push(push: Push) -> None:
        last_push[0] = time.monotonic()
        if push.status == 200:
            fleet.on_push(push.token)

    apns.on_push = on_push

    events = make_events(run, [c.number for c in issued], config.events, rng)
    stats = LedgerStats()
    hurry = asyncio.Event()
    killer = asyncio.create_task(
        cluster.killer(
            random.Random(config.seed + 1),
            config.kills,
            expected_load_seconds(config) / (config.kills + 1),
            hurry,
            in_flight=lambda: stats.in_flight,
        )
    )
    say(
        f"[{config.store}] posting {len(events)} events from {config.clients} clients at "
        f"{f'<= {config.pace:.0f}/s' if config.pace > 0 else 'full speed'}, "
        f"{config.kills} kills"
    )
    t0 = time.monotonic()
    ledger = asyncio.create_task(
        run_clients(bases, LEDGER_SECRET, events, config.clients, config.batch, config.pace, rng, stats)
    )
    try:
        done, _ = await asyncio.wait({ledger, killer}, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if (problem := task.exception()) is not None:
                raise problem
        await ledger
        seconds["load"] = time.monotonic() - t0
        hurry.set()  # the kills left fall in the drain
        await killer
    finally:
        for task in (ledger, killer):
            task.cancel()
    await cluster.ensure_running()
    say(f"[{config.store}] load done in {seconds['load']:.0f} s, {len(cluster.killing.kills)} kills; draining")

    t0 = time.monotonic()
    deadline = t0 + config.drain_timeout
    pending: int | None = None
    while time.monotonic() < deadline:
        pending = await outbox_pending(http, bases[0])
        quiet = time.monotonic() - last_push[0] > QUIET_SECONDS
        if pending == 0 and fleet.busy() == 0 and quiet:
            break
        await asyncio.sleep(0.25)
    seconds["drain"] = time.monotonic() - t0
    say(f"[{config.store}] drained in {seconds['drain']:.0f} s (outbox {pending}, devices busy {fleet.busy()})")
    return Phase(issued, devices, fleet, events, stats, seconds)


async def check_all(report: Report, phase: Phase, http: httpx.AsyncClient, base: str, apns: ApnsProcess) -> None:
    """Every invariant, read from the service (and the fake APNs' record of what it was sent)."""
    events, devices, issued = phase.events, phase.devices, phase.issued
    unanswered = [
        f"{e.id}: {e.outcome or 'no 202'}" for e in events if e.outcome not in ("accepted", "duplicate", "stale")
    ]
    report.check(
        "every event answered 202 (accepted, duplicate on a retry, or stale)", unanswered, len(events), "events"
    )

    # cards: versions and registrations, over the issuer API
    last = expected_versions(events)
    auth = {"Authorization": f"Bearer {ISSUER_KEY}"}

    def card_state(number: str) -> Awaitable[httpx.Response]:
        return retrying(lambda: http.get(f"{base}/v1/cards/{number}", headers=auth), (200,))

    states = await gather_limited(16, (card_state(c.number) for c in issued))
    version_of: dict[str, int] = {}
    wrong_version, wrong_devices = [], []
    per_card = Counter(d.card for d in devices)
    for c, state in zip(issued, states, strict=True):
        body = state.json()
        version_of[c.number] = body["version"]
        want = last[c.number].version if c.number in last else 0
        if body["version"] != want:
            wrong_version.append(f"*{c.number[-4:]} at v{body['version']}, highest accepted v{want}")
        if body["devices"] != per_card[c.number]:
            wrong_devices.append(f"*{c.number[-4:]} has {body['devices']} devices, {per_card[c.number]} registered")
    report.check("every card at its highest accepted version", wrong_version, len(issued), "cards")
    report.check("every registration kept", wrong_devices, len(issued), "cards")

    # devices: a push after the last change (the fake APNs' clock is this machine's), the last version held
    not_pushed, behind = [], []
    for d in devices:
        final = last.get(d.card)
        if final is not None:
            times = [p.at for p in apns.pushes.get(d.token, []) if p.status == 200]
            if not any(t >= final.accepted_try for t in times):
                latest = f"{max(times) - final.accepted_try:+.3f} s from it" if times else "never"
                not_pushed.append(f"{d.device_id} (card *{d.card[-4:]} v{final.version}; last push {latest})")
        if d.version != version_of[d.card]:
            behind.append(f"{d.device_id} holds v{d.version}, card *{d.card[-4:]} is at v{version_of[d.card]}")
    report.check("every device pushed after its card's last change", not_pushed, len(devices), "devices")
    report.check("every device, fetching on its pushes, holds its card's last version", behind, len(devices), "devices")
    # a tag handed out again: a lastUpdated the device had taken already (or one going back), a pass's Last-Modified
    # it had been given already (cards/model.py: only a card changed faster than once a second can cause that)
    tags = [
        f"{d.device_id}: lastUpdated {', '.join(d.repeated_tags)} again (took {d.tags})"
        for d in devices
        if d.repeated_tags
    ]
    report.check("no device handed the same lastUpdated tag twice", tags, len(devices), "devices")
    modified = [
        f"{d.device_id}: Last-Modified {', '.join(d.repeated_modified)} again (versions downloaded {d.versions})"
        for d in devices
        if d.repeated_modified
    ]
    report.check("no device handed the same pass Last-Modified twice", modified, len(devices), "devices")
    report.check("every device answered as PassKit says", phase.fleet.errors, len(devices), "devices")

    # the outbox and the dead letters
    pending = await outbox_pending(http, base)
    report.checks.append(Check("outbox empty", pending == 0, f"wallet_outbox_pending {pending}"))
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    dead = await retrying(
        lambda: http.get(f"{base}/v1/admin/dead-letters", params={"limit": "10000"}, headers=admin), (200,)
    )
    letters = dead.json()["dead_letters"]
    total = dead.json().get("total", len(letters))
    detail = f"{total} dead letters" + (f"; e.g. {letters[:SAMPLES]}" if letters else "")
    report.checks.append(Check("nothing dead-lettered", not letters and not total, detail))

    # last (it posts): every applied event is remembered, so posting it again is a duplicate
    applied = [e for e in events if e.applied]
    missing: list[str] = []
    for start in range(0, len(applied), 100):
        chunk = applied[start : start + 100]
        answer = (await retrying(functools.partial(repost, http, base, chunk), (202,))).json()
        duplicates = set(answer["duplicate"])
        missing += [
            f"{e.id} (answered {e.outcome}) now {_outcome(answer, e.id)}" for e in chunk if e.id not in duplicates
        ]
    report.check("every applied event present (posted again: duplicate)", missing, len(applied), "events")


def figures(config: Config, phase: Phase, cluster: Cluster, apns: ApnsProcess, seconds: float) -> dict[str, str]:
    stats, fleet, killing = phase.stats, phase.fleet.stats, cluster.killing
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(Counter(e.outcome for e in phase.events).items(), key=str))
    victims = ", ".join(f"{k} {v}" for k, v in sorted(Counter(name for _, name in killing.kills).items()))
    rate = len(phase.events) / max(stats.finished - stats.started, 1e-9)
    times = phase.seconds
    return {
        "events": f"{len(phase.events)} ({outcomes}) for {len(phase.issued)} cards, {len(phase.devices)} devices",
        "ledger posts": f"{stats.posts} batches of <= {config.batch} from {config.clients} clients, "
        f"{stats.attempts} attempts, retries {dict(stats.retries) or 0}",
        "kills": f"{len(killing.kills)} ({victims}; {killing.during_posts} with a ledger post in flight)",
        "restarts": f"{killing.restarts} (downtime {killing.downtime:.1f} s summed)",
        "pushes received": f"{apns.total} at the fake APNs (to {len(apns.pushes)} tokens)",
        "device syncs": f"{fleet.syncs} ({fleet.listed} listed, {fleet.unchanged} x 204, {fleet.fetched} passes "
        f"fetched, {fleet.not_modified} x 304, {fleet.failures} failed and retried)",
        "duration": f"{seconds:.0f} s (setup {times.get('setup', 0):.0f}, load {times.get('load', 0):.0f}, drain "
        f"{times.get('drain', 0):.0f}); ledger {rate:.0f} events/s",
    }


async def register(http: httpx.AsyncClient, device: Device) -> int:
    """The device's registration through the PassKit API (201 new)."""
    response = await retrying(
        lambda: http.post(
            f"{device.base(0)}/passkit/v1/devices/{device.device_id}/registrations/{device.pass_type}/{device.serial}",
            headers={"Authorization": f"ApplePass {device.auth_token}"},
            json={"pushToken": device.token},
        ),
        (200, 201),
    )
    return response.status_code


def repost(http: httpx.AsyncClient, base: str, events: list[Event]) -> Awaitable[httpx.Response]:
    return post_batch(http, base, LEDGER_SECRET, [e.body() for e in events])


def _outcome(answer: dict[str, Any], ident: str) -> str:
    for name in ("accepted", "stale", "unknown"):
        if ident in answer.get(name, []):
            return name
    return (
        "invalid" if any(isinstance(i, dict) and i.get("id") == ident for i in answer.get("invalid", [])) else "absent"
    )
