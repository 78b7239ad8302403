"""Fixtures: fast Argon2 parameters for tests that are not about the parameters."""

from __future__ import annotations

import pytest

from bastion.identity.passwords import Argon2Hasher, PasswordSettings

#: Far below OWASP's minimum, named as such: keeps the suite fast where cost is not the point.
FAST = PasswordSettings(hash_memory_kib=64, hash_time_cost=1, allow_insecure_hash_parameters=True)


@pytest.fixture
def fast_settings() -> PasswordSettings:
    return FAST


@pytest.fixture
def fast_hasher() -> Argon2Hasher:
    return Argon2Hasher(FAST)
