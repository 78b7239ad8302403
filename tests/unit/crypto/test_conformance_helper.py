"""The conformance-data locator: skip locally when ../shared is missing, fail under CI=true."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.unit.crypto import conformance


def test_missing_folder_skips_locally(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(conformance, "CONFORMANCE_DIR", tmp_path / "missing")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="conformance data not found"):
        conformance.conformance_path("vectors", "x.txt")


def test_missing_folder_fails_under_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(conformance, "CONFORMANCE_DIR", tmp_path / "missing")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="conformance data not found"):
        conformance.conformance_path("vectors", "x.txt")


def test_the_real_folder_is_found() -> None:
    assert conformance.conformance_path("vectors", "README.md").is_file()
