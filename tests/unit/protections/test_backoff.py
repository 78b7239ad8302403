"""The decaying failure counter: free failures, doubling delays, the cap, decay and reset."""

from __future__ import annotations

import math

import pytest

from bastion.protections.ratelimit import backoff
from bastion.protections.ratelimit.backoff import (
    FORGET_BELOW,
    PASSWORD_BACKOFF,
    BackoffPolicy,
    BackoffState,
    delay_for,
)
from bastion.protections.ratelimit.gcra import NS_PER_SECOND

POLICY = BackoffPolicy(name="test", threshold=3, base_delay=1.0, max_delay=60.0, half_life=600.0)
T0 = 10_000 * NS_PER_SECOND


def fail_n(n: int, policy: BackoffPolicy = POLICY) -> tuple[BackoffState | None, list[float]]:
    state: BackoffState | None = None
    delays = []
    for _ in range(n):
        state, status = backoff.record_failure(state, T0, policy)
        delays.append(status.retry_after)
    return state, delays


def test_free_failures_then_doubling_delays() -> None:
    _, delays = fail_n(8)
    assert delays == [0.0, 0.0, 0.0, 1.0, 2.0, 4.0, 8.0, 16.0]


def test_delay_is_capped() -> None:
    _, delays = fail_n(20)
    assert delays[-1] == 60.0
    assert max(delays) == 60.0
    assert delay_for(1e9, POLICY) == 60.0  # no overflow for absurd counters


def test_waiting_out_the_delay_unblocks() -> None:
    state, delays = fail_n(5)
    assert delays[-1] == 2.0
    assert backoff.status_of(state, T0 + NS_PER_SECOND, POLICY).retry_after == 1.0
    assert backoff.status_of(state, T0 + 2 * NS_PER_SECOND, POLICY).blocked is False


def test_counter_halves_every_half_life() -> None:
    state, _ = fail_n(8)
    one_half_life = T0 + 600 * NS_PER_SECOND
    assert backoff.status_of(state, one_half_life, POLICY).failures == 4.0
    assert backoff.status_of(state, T0 + 1200 * NS_PER_SECOND, POLICY).failures == 2.0
    # After the decay, the next failure counts from the decayed value: 4 + 1 = 5 -> 2 s.
    _, status = backoff.record_failure(state, one_half_life, POLICY)
    assert status.failures == 5.0
    assert status.retry_after == 2.0


def test_a_failure_never_shortens_a_running_wait() -> None:
    fast_decay = BackoffPolicy(name="fast", threshold=3, max_delay=60.0, half_life=1.0)
    state, delays = fail_n(10, fast_decay)
    assert delays[-1] == 60.0
    # Five half-lives later the counter is ~0.3, so this failure alone would cost nothing ...
    state, status = backoff.record_failure(state, T0 + 5 * NS_PER_SECOND, fast_decay)
    assert status.failures < 2
    # ... but the wait already imposed still runs to its end.
    assert status.retry_after == 55.0


def test_forget_time_covers_the_wait_and_the_decay() -> None:
    state, _ = fail_n(8)
    forget = backoff.forget_at_ns(state, POLICY)
    half_lives = math.log2(8 / FORGET_BELOW)
    assert forget == T0 + math.ceil(half_lives * 600 * NS_PER_SECOND)
    assert backoff.decayed_failures(state, forget, POLICY) <= FORGET_BELOW + 1e-9


def test_default_password_policy() -> None:
    _, delays = fail_n(9, PASSWORD_BACKOFF)
    assert delays == [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 4.0, 8.0]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threshold": -1},
        {"base_delay": 0.0},
        {"half_life": 0.0},
        {"base_delay": 10.0, "max_delay": 5.0},
    ],
)
def test_invalid_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"backoff|max_delay"):
        BackoffPolicy(name="bad", **kwargs)  # type: ignore[arg-type]
