"""Programs with different tier sets: a ledger tier must be one of the card's own program."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

from tests.web.conftest import ROOT


def two_programs(tmp: Path) -> Path:
    root = tmp / "templates"
    shutil.copytree(ROOT / "pass_templates" / "coffee", root / "coffee")
    shutil.copytree(ROOT / "pass_templates" / "coffee", root / "tea")
    program = root / "tea" / "program.json"
    data = json.loads(program.read_text(encoding="utf-8"))
    data.update(program="tea", card_prefix="7791", tiers=data["tiers"][:2])  # base and gold only
    program.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return root


def test_tier_must_belong_to_the_cards_program(server_factory, tmp_path: Path) -> None:
    server = server_factory(WALLET_TEMPLATES_DIR=str(two_programs(tmp_path)), WALLET_RUN_WORKER="0")
    tea = server.issue("tea-" + uuid.uuid4().hex[:8], program="tea")
    coffee = server.issue("cof-" + uuid.uuid4().hex[:8])
    bad, good, other = uuid.uuid4().hex, uuid.uuid4().hex, uuid.uuid4().hex
    answer = server.post_ledger(
        [
            {"id": bad, "card": tea["card"], "version": 1, "balance": 40000, "tier": "platinum"},
            {"id": good, "card": coffee["card"], "version": 1, "balance": 40000, "tier": "platinum"},
            {"id": other, "card": tea["card"], "version": 2, "balance": 12000, "tier": "gold"},
        ]
    ).json()
    assert [i["id"] for i in answer["invalid"]] == [bad] and "tea" in answer["invalid"][0]["error"]
    assert sorted(answer["accepted"]) == sorted([good, other])
    assert server.api().get(f"/v1/cards/{tea['card']}").json()["tier"] == "gold"
