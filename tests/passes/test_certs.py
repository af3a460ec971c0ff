"""Certificates: loading (PEM, encrypted PEM, .p12), checks, the dev PKI, refusing expired certificates."""

from __future__ import annotations

import datetime as dt
import os
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from passes.apple.certs import CertificateError, check_certificates, load_signing_material
from passes.apple.pki import PASS_TYPE_EKU, ensure_dev_pki, issue_server_cert, write_pass_cert, write_pass_p12
from passes.apple.pkpass import PassFactory
from passes.apple.signing import CertificateExpiredError, Signer
from tests.passes.conftest import PASS_TYPE_ID, PUBLIC_URL, TEAM_ID, unzip, verify_with_openssl

NOW = dt.datetime.now(dt.UTC)


def check(certs: Path, **kw):
    args = {"pass_type_id": PASS_TYPE_ID, "team_id": TEAM_ID, "password": None, "now": NOW, **kw}
    return check_certificates(
        certs, args.pop("pass_type_id"), args.pop("team_id"), args.pop("password"), args.pop("now")
    )


def test_dev_pki_is_clean(pki_dir) -> None:
    report = check(pki_dir)
    assert report.problems == [] and report.ok
    assert set(report.expiry) == {"pass", "wwdr", "ca"}
    assert 300 < report.expiry["pass"] <= 365
    assert report.expiry["ca"] > report.expiry["wwdr"] > report.expiry["pass"]


def test_dev_pki_shape(pki_dir) -> None:
    for name in ("ca.key", "wwdr.key", "pass.key"):
        assert stat.S_IMODE(os.stat(pki_dir / name).st_mode) == 0o600
    cert = x509.load_pem_x509_certificate((pki_dir / "pass.pem").read_bytes())
    key = serialization.load_pem_private_key((pki_dir / "pass.key").read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    assert cert.subject.get_attributes_for_oid(NameOID.USER_ID)[0].value == PASS_TYPE_ID
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == TEAM_ID
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == f"Pass Type ID: {PASS_TYPE_ID}"
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku and PASS_TYPE_EKU in eku


def test_ensure_dev_pki_is_idempotent_and_repairs(pki_copy) -> None:
    before = (pki_copy / "pass.pem").read_bytes()
    assert ensure_dev_pki(pki_copy, PASS_TYPE_ID, TEAM_ID) is False
    assert (pki_copy / "pass.pem").read_bytes() == before
    (pki_copy / "pass.key").unlink()
    assert ensure_dev_pki(pki_copy, PASS_TYPE_ID, TEAM_ID) is True
    assert check(pki_copy).ok
    # a different pass type id re-issues the leaf only
    wwdr = (pki_copy / "wwdr.pem").read_bytes()
    assert ensure_dev_pki(pki_copy, "pass.other.id", TEAM_ID) is True
    assert (pki_copy / "wwdr.pem").read_bytes() == wwdr
    assert check(pki_copy, pass_type_id="pass.other.id").ok


def test_ensure_dev_pki_leaves_foreign_material_alone(pki_copy) -> None:
    (pki_copy / "ca.key").unlink()  # looks like real certificates now
    (pki_copy / "pass.key").unlink()
    assert ensure_dev_pki(pki_copy, PASS_TYPE_ID, TEAM_ID) is False
    assert not (pki_copy / "pass.key").exists()


@pytest.mark.parametrize(
    "missing, expected",
    [
        ("pass.pem", "missing pass.pem"),
        ("pass.key", "missing pass.key"),
        ("wwdr.pem", "missing wwdr.pem"),
    ],
)
def test_missing_files(pki_copy, missing, expected) -> None:
    (pki_copy / missing).unlink()
    problems = check(pki_copy).problems
    assert any(expected in p for p in problems), problems


def test_empty_folder(tmp_path) -> None:
    problems = check(tmp_path).problems
    assert len(problems) == 3  # pass.pem (or .p12), pass.key, wwdr.pem: one message each
    assert any("pass.p12" in p for p in problems)
    assert check(tmp_path / "nope").problems == [f"certificates folder {tmp_path / 'nope'} does not exist"]


def test_expired_certificate(pki_copy, coffee, make_card) -> None:
    write_pass_cert(
        pki_copy, PASS_TYPE_ID, TEAM_ID, not_before=NOW - dt.timedelta(days=400), not_after=NOW - dt.timedelta(days=1)
    )
    report = check(pki_copy)
    assert any("pass.pem expired on" in p for p in report.problems)
    assert report.expiry["pass"] < 0
    signer = Signer.from_dir(pki_copy)
    with pytest.raises(CertificateExpiredError, match="expired"):
        signer.sign(b"{}")
    factory = PassFactory({"coffee": coffee}, signer, pass_type_id=PASS_TYPE_ID, team_id=TEAM_ID, public_url=PUBLIC_URL)
    with pytest.raises(CertificateExpiredError):
        factory.render(make_card())


def test_signer_clock_and_not_after(signer) -> None:
    assert signer.not_after == min(signer.cert.not_valid_after_utc, signer.wwdr.not_valid_after_utc)
    late = Signer(signer.cert, signer._key, signer.wwdr, clock=lambda: signer.not_after + dt.timedelta(seconds=1))
    with pytest.raises(CertificateExpiredError):
        late.sign(b"{}")
    early = Signer(signer.cert, signer._key, signer.wwdr, clock=lambda: signer.not_before - dt.timedelta(seconds=1))
    with pytest.raises(CertificateExpiredError, match="not valid before"):
        early.sign(b"{}")


def test_key_mismatch(pki_copy, tmp_path) -> None:
    other = tmp_path / "other"
    ensure_dev_pki(other, PASS_TYPE_ID, TEAM_ID)
    (pki_copy / "pass.key").write_bytes((other / "pass.key").read_bytes())
    assert any("pass.key is not the private key of pass.pem" in p for p in check(pki_copy).problems)
    with pytest.raises(CertificateError, match="does not belong"):
        Signer.from_dir(pki_copy)


def test_wrong_identifiers(pki_dir) -> None:
    problems = check(pki_dir, pass_type_id="pass.com.example.other", team_id="OTHERTEAM1").problems
    assert any("pass type 'pass.com.example.wallet.test'" in p and "pass.com.example.other" in p for p in problems)
    assert any("team 'TEAMID1234'" in p and "OTHERTEAM1" in p for p in problems)


def test_wwdr_not_issuer(pki_copy, tmp_path) -> None:
    other = tmp_path / "other"
    ensure_dev_pki(other, PASS_TYPE_ID, TEAM_ID)
    (pki_copy / "wwdr.pem").write_bytes((other / "wwdr.pem").read_bytes())
    problems = check(pki_copy).problems
    assert any("wwdr.pem is not the issuer of pass.pem" in p for p in problems)
    assert any("ca.pem is not the issuer of wwdr.pem" in p for p in problems)


def test_encrypted_key(pki_copy) -> None:
    write_pass_cert(pki_copy, PASS_TYPE_ID, TEAM_ID, password="s3cret-pw")
    with pytest.raises(CertificateError, match="encrypted; set WALLET_PASS_KEY_PASSWORD"):
        load_signing_material(pki_copy, None)
    with pytest.raises(CertificateError, match="wrong password"):
        load_signing_material(pki_copy, "nope")
    key = load_signing_material(pki_copy, "s3cret-pw").key
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    assert check(pki_copy, password="s3cret-pw").ok
    problems = check(pki_copy, password="bad-guess").problems
    assert problems and all("bad-guess" not in p and "s3cret" not in p for p in problems)


def test_p12_with_password_loads_and_signs(pki_copy, coffee, make_card, tmp_path) -> None:
    write_pass_p12(pki_copy, "p12-pass")
    (pki_copy / "pass.pem").unlink()
    (pki_copy / "pass.key").unlink()
    material = load_signing_material(pki_copy, "p12-pass")
    assert material.root is not None
    assert check(pki_copy, password="p12-pass").ok
    problems = check(pki_copy, password="wrong").problems
    assert any("pass.p12 cannot be opened" in p for p in problems)
    # the intermediate inside the .p12 stands in for a missing wwdr.pem
    (pki_copy / "wwdr.pem").unlink()
    material = load_signing_material(pki_copy, "p12-pass")
    factory = PassFactory(
        {"coffee": coffee},
        Signer.from_material(material),
        pass_type_id=PASS_TYPE_ID,
        team_id=TEAM_ID,
        public_url=PUBLIC_URL,
    )
    files = unzip(factory.render(make_card()).data)
    # openssl needs the WWDR file for -certfile; write it back from the material
    (pki_copy / "wwdr.pem").write_bytes(material.wwdr.public_bytes(serialization.Encoding.PEM))
    verify_with_openssl(files, pki_copy, tmp_path / "v")


def test_messages_never_contain_key_material(pki_copy) -> None:
    key_pem = (pki_copy / "pass.key").read_text()
    body = "".join(key_pem.splitlines()[1:-1])
    (pki_copy / "pass.key").write_text(key_pem.replace(body[:64], "A" * 64))  # corrupt it
    problems = check(pki_copy).problems
    assert problems
    for p in problems:
        assert "PRIVATE KEY" not in p and body[64:96] not in p


def test_server_cert_for_tls_fakes(pki_dir, tmp_path) -> None:
    cert_path, key_path = issue_server_cert(pki_dir, ["localhost", "127.0.0.1"], name="test-server")
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    # A real handshake in memory: the server (a fake APNs) is trusted through the dev root, and
    # it accepts the pass certificate as a client certificate (sent with the WWDR intermediate).
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki_dir / "ca.pem"))
    server_ctx.load_cert_chain(cert_path, key_path)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    client_chain = tmp_path / "client.pem"
    client_chain.write_bytes((pki_dir / "pass.pem").read_bytes() + (pki_dir / "wwdr.pem").read_bytes())
    client_ctx = ssl.create_default_context(cafile=str(pki_dir / "ca.pem"))
    client_ctx.load_cert_chain(client_chain, pki_dir / "pass.key")
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="localhost")
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"c": False, "s": False}
    for _ in range(10):
        for side, obj in (("c", client), ("s", server)):
            if not done[side]:
                try:
                    obj.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            break
    assert all(done.values())
    peer = server.getpeercert()
    assert peer is not None
    assert ("userId", PASS_TYPE_ID) in [attr for rdn in peer["subject"] for attr in rdn]
    with pytest.raises(FileNotFoundError):
        issue_server_cert(tmp_path)
