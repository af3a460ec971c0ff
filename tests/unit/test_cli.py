"""The command-line tool, run as a user would (a subprocess per command)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WALLET_")}
    env.update({"WALLET_CERTS_DIR": str(tmp / "certs"), "WALLET_DATABASE_URL": f"sqlite:///{tmp / 'w.db'}"})
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_cli_commands(tmp_path: Path):
    assert "created" in run(tmp_path, "pki").stdout
    assert "already present" in run(tmp_path, "pki").stdout
    checked = run(tmp_path, "check-certs")
    assert checked.returncode == 0 and "certificates OK" in checked.stdout and "days to expiry" in checked.stdout

    key = run(tmp_path, "api-key", "marketing")
    role, _, secret = key.stdout.strip().partition(":")
    assert role == "marketing" and len(secret) >= 32

    out = tmp_path / "anna.pkpass"
    issued = run(tmp_path, "issue", "--account", "acc-cli", "--name", "Anna", "--balance", "12000", "--out", str(out))
    assert issued.returncode == 0, issued.stderr
    with zipfile.ZipFile(io.BytesIO(out.read_bytes())) as archive:
        assert {"pass.json", "manifest.json", "signature"} <= set(archive.namelist())
        pass_json = json.loads(archive.read("pass.json"))
    assert pass_json["serialNumber"] in issued.stdout
    assert "Anna" not in issued.stdout  # no PII in what it prints beyond the last 4 digits
    again = run(tmp_path, "issue", "--account", "acc-cli", "--name", "Anna", "--out", str(out))
    assert "existing" in again.stdout

    assert run(tmp_path, "issue", "--account", "a2", "--name", "B", "--program", "tea").returncode == 2
    pushed = run(tmp_path, "test-push", "--token", "ab" * 32)
    assert pushed.returncode == 0 and "dry run" in pushed.stdout


def test_issue_refuses_an_account_of_another_program_cleanly(tmp_path: Path):
    import shutil

    programs = tmp_path / "programs"
    shutil.copytree(ROOT / "pass_templates" / "coffee", programs / "coffee")
    shutil.copytree(ROOT / "pass_templates" / "coffee", programs / "tea")
    meta = json.loads((programs / "tea" / "program.json").read_text())
    meta["program"], meta["card_prefix"] = "tea", "7791"
    (programs / "tea" / "program.json").write_text(json.dumps(meta))
    env_extra = {"WALLET_TEMPLATES_DIR": str(programs)}

    def issue(program: str) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WALLET_")}
        env.update(
            {
                "WALLET_CERTS_DIR": str(tmp_path / "certs"),
                "WALLET_DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}",
                **env_extra,
            }
        )
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "cli",
                "issue",
                "--program",
                program,
                "--account",
                "acc-x",
                "--name",
                "X",
                "--out",
                str(tmp_path / f"{program}.pkpass"),
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert issue("coffee").returncode == 0
    refused = issue("tea")
    assert refused.returncode == 2, refused.stderr
    assert "another program" in refused.stderr and "Traceback" not in refused.stderr


def test_the_cli_does_not_import_the_web_package(tmp_path: Path):
    script = (
        "import sys; from cli.__main__ import main; code = main(sys.argv[1:]); "
        "print('web loaded' if any(m == 'web' or m.startswith('web.') for m in sys.modules) else 'no web'); "
        "raise SystemExit(code)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("WALLET_")}
    env.update({"WALLET_CERTS_DIR": str(tmp_path / "certs"), "WALLET_DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}"})
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            "issue",
            "--account",
            "acc-w",
            "--name",
            "W",
            "--out",
            str(tmp_path / "w.pkpass"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("no web")
