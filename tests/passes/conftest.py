"""Session-wide dev PKI, the shipped templates, and helpers to open and verify passes."""

from __future__ import annotations

import io
import shutil
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from cards.model import Card, Member
from cards.numbers import new_auth_token, new_card_number, new_serial
from passes.apple.pki import ensure_dev_pki
from passes.apple.pkpass import PassFactory
from passes.apple.signing import Signer
from passes.programs import Program, load_programs
from tests.pii_guard import sensitive_card

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES_DIR = ROOT / "pass_templates"
PASS_TYPE_ID = "pass.com.example.wallet.test"
TEAM_ID = "TEAMID1234"
PUBLIC_URL = "https://wallet.example.test"


@pytest.fixture(scope="session")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pki")
    assert ensure_dev_pki(path, PASS_TYPE_ID, TEAM_ID)
    return path


@pytest.fixture
def pki_copy(pki_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the session PKI that a test may break."""
    dest = tmp_path / "certs"
    shutil.copytree(pki_dir, dest)
    return dest


@pytest.fixture(scope="session")
def templates() -> dict[str, Program]:
    return load_programs(TEMPLATES_DIR)


@pytest.fixture(scope="session")
def coffee(templates: dict[str, Program]) -> Program:
    return templates["coffee"]


@pytest.fixture(scope="session")
def signer(pki_dir: Path) -> Signer:
    return Signer.from_dir(pki_dir)


@pytest.fixture
def factory(templates: dict[str, Program], signer: Signer) -> PassFactory:
    return PassFactory(templates, signer, pass_type_id=PASS_TYPE_ID, team_id=TEAM_ID, public_url=PUBLIC_URL)


@pytest.fixture
def make_card() -> Callable[..., Card]:
    def make(**changes) -> Card:
        base = Card(
            number=new_card_number("7790"),
            program="coffee",
            account="acct-1",
            serial=new_serial(),
            auth_token=new_auth_token(),
            member=Member(name="Анна Иванова", phone="+79990000000"),
            locale="ru",
            balance=1250,
            tier="base",
            pending=120,
            expiring_points=300,
            expiring_date="2027-03-31",
            last_message="Покупка: +62 балла",
        )
        return sensitive_card(base.with_changes(**changes))

    return make


def unzip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        return {info.filename: zf.read(info) for info in zf.infolist()}


def openssl(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=30)


def verify_with_openssl(files: dict[str, bytes], certs: Path, workdir: Path) -> None:
    """The check from SPEC.md: detached signature over manifest.json, chain to the dev root, signingTime."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "signature").write_bytes(files["signature"])
    (workdir / "manifest.json").write_bytes(files["manifest.json"])
    res = openssl(
        "smime",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        "signature",
        "-content",
        "manifest.json",
        "-CAfile",
        str(certs / "ca.pem"),
        "-certfile",
        str(certs / "wwdr.pem"),
        "-purpose",
        "any",
        "-out",
        "/dev/null",
        cwd=workdir,
    )
    assert res.returncode == 0, res.stderr
    assert "Verification successful" in res.stderr
    printed = openssl("cms", "-cmsout", "-print", "-inform", "DER", "-in", "signature", cwd=workdir)
    assert printed.returncode == 0, printed.stderr
    for attr in ("signingTime", "contentType", "messageDigest"):
        assert f"object: {attr}" in printed.stdout, f"signed attribute {attr} missing"
    certs_out = openssl("pkcs7", "-inform", "DER", "-in", "signature", "-print_certs", "-noout", cwd=workdir)
    assert certs_out.stdout.count("subject=") == 2, "signature must embed pass cert + WWDR"
