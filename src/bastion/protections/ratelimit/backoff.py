"""A decaying failure counter: exponential backoff for password, TOTP and recovery code checks.

Each failure adds one to a counter that halves every ``half_life`` seconds, so old mistakes fade
and an honest user is never locked out for good. Once the counter exceeds ``threshold``, each
further failure imposes a wait of ``base_delay * 2 ** (failures - threshold - 1)`` seconds, capped
at ``max_delay``: an online guessing attack slows down exponentially (brute force, credential
stuffing) while a user who mistypes a few times never notices. A success clears the counter.

The functions here are pure (time is integer nanoseconds); the stores persist
:class:`BackoffState` and the Redis script mirrors the same arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bastion.protections.ratelimit.gcra import NS_PER_SECOND
from bastion.protections.ratelimit.interfaces import FailureMode

#: Failures a user may make before the first delay.
DEFAULT_THRESHOLD = 5
#: The first delay, in seconds; each further failure doubles it.
DEFAULT_BASE_DELAY_SECONDS = 1.0
#: No single delay exceeds this: long enough to stop guessing, short enough to limit lockout abuse.
DEFAULT_MAX_DELAY_SECONDS = 15 * 60.0
#: The counter halves every hour without failures.
DEFAULT_HALF_LIFE_SECONDS = 3600.0
#: A counter that has decayed below this is forgotten (the key may expire).
FORGET_BELOW = 0.1


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """How fast failures for one kind of secret slow the caller down."""

    name: str
    threshold: int = DEFAULT_THRESHOLD
    base_delay: float = DEFAULT_BASE_DELAY_SECONDS
    max_delay: float = DEFAULT_MAX_DELAY_SECONDS
    half_life: float = DEFAULT_HALF_LIFE_SECONDS
    # Backoff guards authentication: when the shared store is down, refuse rather than guess.
    failure_mode: FailureMode = FailureMode.FAIL_CLOSED

    def __post_init__(self) -> None:
        if self.threshold < 0 or self.base_delay <= 0 or self.half_life <= 0:
            raise ValueError("backoff needs threshold >= 0, base_delay > 0 and half_life > 0")
        if self.max_delay < self.base_delay:
            raise ValueError("max_delay must be at least base_delay")


#: Passwords: five free failures, then 1 s, 2 s, 4 s ... up to 15 minutes.
PASSWORD_BACKOFF = BackoffPolicy(name="password")
#: TOTP codes: a 6-digit code has 10**6 values; three free failures cover honest clock-skew typos.
TOTP_BACKOFF = BackoffPolicy(name="totp", threshold=3)
#: Recovery codes are rarely typed; any repeated failure is suspicious.
RECOVERY_CODE_BACKOFF = BackoffPolicy(name="recovery_code", threshold=2, base_delay=2.0)


@dataclass(frozen=True, slots=True)
class BackoffState:
    """What a store keeps per key: the counter as of ``updated_ns`` and the end of the wait."""

    failures: float
    updated_ns: int
    blocked_until_ns: int


@dataclass(frozen=True, slots=True)
class BackoffStatus:
    """``failures``: the decayed counter now. ``retry_after``: seconds left to wait (0: go)."""

    failures: float
    retry_after: float

    @property
    def blocked(self) -> bool:
        return self.retry_after > 0


def decayed_failures(state: BackoffState | None, now_ns: int, policy: BackoffPolicy) -> float:
    if state is None:
        return 0.0
    elapsed = max(0, now_ns - state.updated_ns) / NS_PER_SECOND
    return float(state.failures * 0.5 ** (elapsed / policy.half_life))


def delay_for(failures: float, policy: BackoffPolicy) -> float:
    """Seconds to wait after reaching ``failures``; 0 up to the threshold."""
    if failures <= policy.threshold:
        return 0.0
    exponent = failures - policy.threshold - 1
    # Cap the exponent first: 2**exponent must not overflow for absurd counters.
    if exponent >= math.log2(policy.max_delay / policy.base_delay):
        return policy.max_delay
    return float(policy.base_delay * 2**exponent)


def record_failure(
    state: BackoffState | None, now_ns: int, policy: BackoffPolicy
) -> tuple[BackoffState, BackoffStatus]:
    """Count one failure; returns the new state and the wait it imposes."""
    failures = decayed_failures(state, now_ns, policy) + 1
    delay_ns = round(delay_for(failures, policy) * NS_PER_SECOND)
    blocked_until = now_ns + delay_ns
    if state is not None:
        blocked_until = max(blocked_until, state.blocked_until_ns)
    new_state = BackoffState(failures=failures, updated_ns=now_ns, blocked_until_ns=blocked_until)
    return new_state, status_of(new_state, now_ns, policy)


def status_of(state: BackoffState | None, now_ns: int, policy: BackoffPolicy) -> BackoffStatus:
    if state is None:
        return BackoffStatus(failures=0.0, retry_after=0.0)
    wait_ns = max(0, state.blocked_until_ns - now_ns)
    return BackoffStatus(
        failures=decayed_failures(state, now_ns, policy), retry_after=wait_ns / NS_PER_SECOND
    )


def forget_at_ns(state: BackoffState, policy: BackoffPolicy) -> int:
    """When the state can be dropped: the wait is over and the counter fell below FORGET_BELOW."""
    decay_ns = 0
    if state.failures > FORGET_BELOW:
        half_lives = math.log2(state.failures / FORGET_BELOW)
        decay_ns = math.ceil(half_lives * policy.half_life * NS_PER_SECOND)
    return max(state.blocked_until_ns, state.updated_ns + decay_ns)
