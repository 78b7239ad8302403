"""docs/operations.md lists every setting, so the documentation cannot drift from the code."""

from __future__ import annotations

from pathlib import Path

from bastion.config import Settings

OPERATIONS = Path(__file__).parents[3] / "docs" / "operations.md"


def test_every_setting_is_documented() -> None:
    text = OPERATIONS.read_text(encoding="utf-8")
    missing = [name for name in Settings.model_fields if f"`BASTION_{name.upper()}`" not in text]
    assert not missing, f"settings missing from docs/operations.md: {missing}"
