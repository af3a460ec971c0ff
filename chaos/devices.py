"""Simulated iPhones (after tests/web/iphone.py, asynchronous): each holds one pass, registered
through the PassKit API; on every push it asks for its passes updated since its last tag and
fetches each one listed (If-Modified-Since its Last-Modified), as Wallet does. A push arriving
while it syncs makes it sync once more afterwards. Every tag and Last-Modified it is handed is
remembered, to find one handed out twice."""

from __future__ import annotations

import asyncio
import io
import json
import random
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

RETRY_SECONDS = 0.2  # after a failed sync; doubling up to RETRY_MAX_SECONDS
RETRY_MAX_SECONDS = 2.0


def pass_json(pkpass: bytes) -> dict[str, object]:
    with zipfile.ZipFile(io.BytesIO(pkpass)) as archive:
        data: dict[str, object] = json.loads(archive.read("pass.json"))
        return data


def pass_version(info: dict[str, object]) -> int:
    """The version a pass shows: the chaos ledger posts balance = version (chaos/ledger.py)."""
    semantics = info.get("semantics")
    assert isinstance(semantics, dict)
    return int(semantics["balance"]["amount"])


class Retry(Exception):
    """A sync that failed as a restarting service makes it fail (5xx, 429): tried again later."""


@dataclass
class DeviceStats:
    syncs: int = 0
    listed: int = 0  # 200 answers to serials-since
    unchanged: int = 0  # 204 answers
    fetched: int = 0  # 200 pass downloads
    not_modified: int = 0  # 304 answers
    failures: int = 0  # a sync given up for now (connection error, 5xx) and retried


@dataclass
class Device:
    device_id: str
    token: str
    card: str
    serial: str
    auth_token: str
    pass_type: str
    bases: Sequence[str]
    index: int = 0  # spreads the devices over the web processes
    version: int = 0  # the version of the pass it holds
    last_modified: str | None = None
    tag: str | None = None
    tags: list[str] = field(default_factory=list)  # every lastUpdated it took, in order
    modified: list[str] = field(default_factory=list)  # every Last-Modified of a pass it took, in order
    versions: list[int] = field(default_factory=list)  # the versions it downloaded, in order
    repeated_tags: list[str] = field(default_factory=list)
    repeated_modified: list[str] = field(default_factory=list)
    pending: bool = False
    task: asyncio.Task[None] | None = None

    def base(self, attempt: int) -> str:
        return self.bases[(self.index + attempt) % len(self.bases)]

    def notify(self, fleet: Fleet) -> None:
        self.pending = True
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run(fleet))

    async def _run(self, fleet: Fleet) -> None:
        attempt = 0
        while self.pending:
            self.pending = False
            async with fleet.gate:
                try:
                    await self._sync(fleet, attempt)
                    attempt = 0
                    continue
                except (httpx.HTTPError, Retry):
                    fleet.stats.failures += 1
                except Exception as exc:  # an answer PassKit does not allow: noted, and this device stops
                    fleet.errors.append(f"{self.device_id}: {type(exc).__name__}: {exc}")
                    return
            self.pending = True  # a failed sync is tried again, as Wallet does on its next chance
            attempt += 1
            await asyncio.sleep(
                min(RETRY_MAX_SECONDS, RETRY_SECONDS * 2 ** (attempt - 1)) * fleet.rng.uniform(0.5, 1.5)
            )

    @staticmethod
    def _unexpected(what: str, response: httpx.Response) -> Exception:
        if response.status_code >= 500 or response.status_code == 429:
            return Retry(f"{what}: {response.status_code}")  # a process going down, or restarting
        return AssertionError(f"{what} answered {response.status_code}: {response.text[:200]}")

    async def _sync(self, fleet: Fleet, attempt: int) -> None:
        http = fleet.http
        base = self.base(attempt)
        fleet.stats.syncs += 1
        params = {"passesUpdatedSince": self.tag} if self.tag is not None else {}
        listed = await http.get(
            f"{base}/passkit/v1/devices/{self.device_id}/registrations/{self.pass_type}", params=params
        )
        if listed.status_code == 204:
            fleet.stats.unchanged += 1
            return
        if listed.status_code != 200:
            raise self._unexpected("serials since", listed)
        fleet.stats.listed += 1
        body = listed.json()
        for serial in body["serialNumbers"]:
            if serial != self.serial:
                raise AssertionError(f"device {self.device_id} was listed a pass it does not hold: {serial}")
            headers = {"Authorization": f"ApplePass {self.auth_token}"}
            if self.last_modified:
                headers["If-Modified-Since"] = self.last_modified
            got = await http.get(f"{base}/passkit/v1/passes/{self.pass_type}/{serial}", headers=headers)
            if got.status_code == 304:
                fleet.stats.not_modified += 1
                continue
            if got.status_code != 200:
                raise self._unexpected("pass", got)
            fleet.stats.fetched += 1
            modified = got.headers.get("last-modified", "")
            if modified in self.modified:
                self.repeated_modified.append(modified)
            self.modified.append(modified)
            self.last_modified = modified
            self.version = pass_version(pass_json(got.content))
            self.versions.append(self.version)
        tag = str(body["lastUpdated"])
        if tag in self.tags:
            self.repeated_tags.append(tag)
        elif self.tags and tag.isdigit() and self.tags[-1].isdigit() and int(tag) < int(self.tags[-1]):
            self.repeated_tags.append(f"{tag} (went back from {self.tags[-1]})")  # tags are strictly monotonic
        self.tags.append(tag)
        self.tag = tag


@dataclass
class Fleet:
    devices: list[Device]
    http: httpx.AsyncClient
    rng: random.Random
    gate: asyncio.Semaphore
    stats: DeviceStats = field(default_factory=DeviceStats)
    errors: list[str] = field(default_factory=list)  # answers PassKit does not allow (a 401, a foreign serial)

    def __post_init__(self) -> None:
        self.by_token = {d.token: d for d in self.devices}

    def on_push(self, token: str) -> None:
        device = self.by_token.get(token)
        if device is not None:
            device.notify(self)

    def cancel(self) -> None:
        for d in self.devices:
            if d.task is not None:
                d.task.cancel()

    def busy(self) -> int:
        return sum(1 for d in self.devices if d.pending or (d.task is not None and not d.task.done()))
