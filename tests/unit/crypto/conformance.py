"""Access to the third-party conformance data in ``../shared/conformance`` (beside the repo).

The data is not copied into the repository (its README asks for that). When the folder is
missing, tests that need it skip with the reason, except under ``CI=true``, where a missing
folder is a broken pipeline and fails the test. Shared by the crypto and identity unit tests.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: tests/unit/crypto/conformance.py -> parents[3] is the repository root.
CONFORMANCE_DIR = Path(__file__).parents[3] / ".." / "shared" / "conformance"


def conformance_path(*parts: str) -> Path:
    """Return the path of a conformance file; skip (or fail under CI) when it is missing."""
    path = CONFORMANCE_DIR.joinpath(*parts)
    if not path.exists():
        reason = f"conformance data not found at {path.resolve()} (expected ../shared/conformance)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def parse_records(path: Path) -> list[dict[str, str]]:
    """Parse the NIST / pyca ``KEY = value`` vector format into one dict per case.

    A ``COUNT``/``Count`` line starts a case; ``[Name = value]`` lines set section values that
    every following case inherits; a bare ``FAIL`` line marks the case as ``FAIL = "1"``.
    Comments (``#``) and blank lines are ignored.
    """
    records: list[dict[str, str]] = []
    section: dict[str, str] = {}
    current: dict[str, str] | None = None
    for raw_line in path.read_text(encoding="utf-8").splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            name, _, value = line[1:-1].partition("=")
            section[name.strip()] = value.strip()
            continue
        if line == "FAIL":
            assert current is not None
            current["FAIL"] = "1"
            continue
        name, _, value = line.partition("=")
        name, value = name.strip(), value.strip()
        if name.lower() == "count":
            current = {**section}
            records.append(current)
        assert current is not None, f"{path.name}: value before the first COUNT: {line!r}"
        current[name] = value
    return records
