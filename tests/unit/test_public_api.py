"""The curated public API: `__all__` is complete, sorted, and every name resolves."""

from __future__ import annotations

import bastion


def test_all_is_sorted_and_resolves() -> None:
    assert list(bastion.__all__) == sorted(bastion.__all__)
    for name in bastion.__all__:
        assert hasattr(bastion, name), name


def test_all_lists_every_public_name() -> None:
    public = {
        name
        for name, value in vars(bastion).items()
        if not name.startswith("_") and not isinstance(value, type(bastion))
    }
    public -= {"version", "PackageNotFoundError"}
    assert public <= set(bastion.__all__)
