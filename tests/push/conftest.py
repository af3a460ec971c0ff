"""Fixtures: throw-away PKI, a running fake APNs, senders pointed at it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from push.channels.apns.sender import ApnsChannel
from push.channels.fcm import FcmChannel
from tests.fakes.apns_server import FakeApnsServer
from tests.fakes.fcm_server import FakeFcmServer
from tests.fakes.tls import ApnsSigningKey, CertAuthority, Issued, TlsFiles, write_server_files

PASS_TYPE_ID = "pass.com.example.coffee"
TEAM_ID = "TEAM123456"
APP_TOPIC = "com.example.coffee.app"


@dataclass(frozen=True)
class Pki:
    files: TlsFiles
    pass_cert: Issued  # Pass Type ID certificate + key, signed by the trusted CA
    foreign_cert: Issued  # same subject, signed by some other CA
    signing_key: ApnsSigningKey


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    ca = CertAuthority()
    directory: Path = tmp_path_factory.mktemp("pki")
    return Pki(
        files=write_server_files(ca, directory),
        pass_cert=ca.pass_type_cert(PASS_TYPE_ID, TEAM_ID),
        foreign_cert=CertAuthority("Somebody Else").pass_type_cert(PASS_TYPE_ID, TEAM_ID),
        signing_key=ApnsSigningKey.generate(team_id=TEAM_ID),
    )


@pytest.fixture
async def apns_fake(pki: Pki) -> AsyncIterator[FakeApnsServer]:
    server = FakeApnsServer(pki.files.server_cert, pki.files.server_key, client_ca_file=pki.files.ca)
    server.add_jwt_key(pki.signing_key.key_id, pki.signing_key.team_id, pki.signing_key.public_pem)
    await server.start()
    yield server
    await server.stop()


def make_cert_sender(pki: Pki, server: FakeApnsServer, **kwargs: object) -> ApnsChannel:
    return ApnsChannel(
        PASS_TYPE_ID,
        endpoint=server.url,
        client_cert_pem=kwargs.pop("cert", pki.pass_cert.chain_pem),  # type: ignore[arg-type]  # object kwargs
        ca_file=str(pki.files.ca),
        **kwargs,  # type: ignore[arg-type]  # the tests pass ApnsChannel's own keywords
    )


@pytest.fixture
async def apns_sender(pki: Pki, apns_fake: FakeApnsServer) -> AsyncIterator[ApnsChannel]:
    sender = make_cert_sender(pki, apns_fake)
    yield sender
    await sender.aclose()


@pytest.fixture
def fcm_fake() -> Iterator[FakeFcmServer]:
    with FakeFcmServer() as server:
        yield server


@pytest.fixture
def service_account_file(fcm_fake: FakeFcmServer, tmp_path: Path) -> Path:
    path = tmp_path / "service-account.json"
    path.write_text(json.dumps(fcm_fake.service_account("demo-project")))
    path.chmod(0o600)
    return path


@pytest.fixture
async def fcm_sender(fcm_fake: FakeFcmServer, service_account_file: Path) -> AsyncIterator[FcmChannel]:
    sender = FcmChannel(str(service_account_file), fcm_endpoint_base=fcm_fake.endpoint_base, timeout=5)
    yield sender
    await sender.aclose()
