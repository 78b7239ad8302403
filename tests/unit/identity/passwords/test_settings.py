"""PasswordSettings: secure defaults, NIST bounds, OWASP floor unless named otherwise."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bastion.identity.passwords import PasswordService, PasswordSettings


def test_defaults_are_the_secure_choice() -> None:
    s = PasswordSettings()
    assert (s.hash_memory_kib, s.hash_time_cost, s.hash_parallelism) == (19_456, 2, 1)
    assert s.hash_parameters_meet_owasp
    assert not s.allow_insecure_hash_parameters
    assert (s.min_length, s.max_length, s.min_strength_score) == (12, 128, 3)
    assert s.min_character_classes == 0  # composition rules: off
    assert s.history_size == 0  # history: off
    assert not s.breach_check  # network: off
    assert s.breach_check_url.startswith("https://")


@pytest.mark.parametrize("value", [0, 7])
def test_min_length_below_nist_floor_is_a_validation_error(value: int) -> None:
    with pytest.raises(ValidationError, match="min_length"):
        PasswordSettings(min_length=value)


def test_max_length_must_allow_at_least_64_characters() -> None:
    with pytest.raises(ValidationError, match="max_length"):
        PasswordSettings(max_length=63)
    assert PasswordSettings(min_length=8, max_length=64).max_length == 64


def test_weak_argon2_parameters_need_the_named_opt_in() -> None:
    with pytest.raises(ValidationError, match="OWASP"):
        PasswordSettings(hash_memory_kib=19_455)
    with pytest.raises(ValidationError, match="OWASP"):
        PasswordSettings(hash_time_cost=1)
    weak = PasswordSettings(
        hash_memory_kib=64, hash_time_cost=1, allow_insecure_hash_parameters=True
    )
    assert not weak.hash_parameters_meet_owasp


@pytest.mark.parametrize(
    ("m", "t"), [(47_104, 1), (19_456, 2), (12_288, 3), (9_216, 4), (7_168, 5)]
)
def test_every_owasp_equivalent_configuration_is_accepted(m: int, t: int) -> None:
    assert PasswordSettings(hash_memory_kib=m, hash_time_cost=t).hash_parameters_meet_owasp


def test_other_invalid_values() -> None:
    with pytest.raises(ValidationError, match="https"):
        PasswordSettings(breach_check_url="http://api.pwnedpasswords.com/range/")
    with pytest.raises(ValidationError, match="per lane"):
        PasswordSettings(
            hash_memory_kib=16, hash_parallelism=4, allow_insecure_hash_parameters=True
        )
    with pytest.raises(ValidationError):
        PasswordSettings(unknown=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        PasswordSettings(hash_memory_kib=2 * 1024 * 1024)


def test_hand_over_batch_bounds_and_the_service_pool_uses_it() -> None:
    assert PasswordSettings().hash_hand_over_batch == 3
    for value in (0, 17):
        with pytest.raises(ValidationError, match="hash_hand_over_batch"):
            PasswordSettings(hash_hand_over_batch=value)
    service = PasswordService(PasswordSettings(hash_hand_over_batch=1))
    assert service.pool.hand_over_batch == 1
    service.pool.shutdown()
