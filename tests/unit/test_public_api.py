"""The curated public APIs: `__all__` is complete, sorted, and every name resolves."""

from __future__ import annotations

import types

import pytest

import bastion
import bastion.sdk


@pytest.mark.parametrize("module", [bastion, bastion.sdk], ids=["bastion", "bastion.sdk"])
def test_all_is_sorted_and_resolves(module: types.ModuleType) -> None:
    assert list(module.__all__) == sorted(module.__all__)
    for name in module.__all__:
        assert hasattr(module, name), name


@pytest.mark.parametrize("module", [bastion, bastion.sdk], ids=["bastion", "bastion.sdk"])
def test_all_lists_every_public_name(module: types.ModuleType) -> None:
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    public -= {"version", "PackageNotFoundError"}
    assert public <= set(module.__all__)
