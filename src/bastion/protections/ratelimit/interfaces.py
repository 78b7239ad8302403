"""Seams of the rate limiting library: the stores behind the limiter and the backoff counter.

Two implementations ship: :class:`~bastion.protections.ratelimit.memory.MemoryStore` (one worker)
and :class:`~bastion.protections.ratelimit.redis_store.RedisStore` (shared by every worker and
machine). :class:`~bastion.protections.ratelimit.failover.FailoverStore` wraps the Redis store with
a local fallback and honours each check's :class:`FailureMode`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple, Protocol

from bastion.clock import Clock
from bastion.protections.ratelimit.gcra import Decision, Rate

if TYPE_CHECKING:  # the backoff module imports FailureMode from here
    from bastion.protections.ratelimit.backoff import BackoffPolicy, BackoffStatus

#: Integer nanoseconds on a monotonic scale (``time.monotonic_ns``); injected so tests control time.
Ticker = Callable[[], int]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: A limiter that waits on a sick Redis stalls every request: give up quickly and fail over.
#: (Here, not in ``redis_store``, so the settings do not import the Redis client.)
DEFAULT_TIMEOUT_SECONDS = 0.25


def ticker_from_clock(clock: Clock) -> Ticker:
    """A ticker that reads an injected :class:`~bastion.clock.Clock` (``FrozenClock`` in tests)."""

    def tick() -> int:
        return (clock.now() - _EPOCH) // timedelta(microseconds=1) * 1_000

    return tick


class FailureMode(enum.StrEnum):
    """What a limit does when its store cannot decide (e.g. Redis is down)."""

    #: Refuse the request (503): for authentication, where an unlimited window is the attack.
    FAIL_CLOSED = "fail_closed"
    #: Decide with a local, per-worker store instead: for the general API budget.
    FAIL_OPEN = "fail_open"


class Check(NamedTuple):
    """One limit to apply: ``cost`` units from the bucket ``key`` at ``rate``."""

    key: str
    rate: Rate
    cost: int = 1
    failure_mode: FailureMode = FailureMode.FAIL_CLOSED


class LimitStore(Protocol):
    """Decides rate limits and remembers the state they need.

    ``decide`` applies every check atomically and all-or-nothing: units are taken from every
    bucket only if every check allows the request, so a refused request consumes nothing.
    Returns one :class:`Decision` per check, in order; when the request is refused, the checks
    that would have allowed it report their bucket untouched. Raises
    :class:`~bastion.protections.ratelimit.errors.StoreUnavailable` when the store cannot decide.
    Keys expire by themselves once their bucket is full again.
    """

    async def decide(self, checks: Sequence[Check]) -> tuple[Decision, ...]: ...


class BackoffStore(Protocol):
    """Keeps decaying failure counters (see :mod:`bastion.protections.ratelimit.backoff`).

    ``record_failure`` adds one failure and returns the wait it imposes; ``status`` reads the
    current wait without changing anything; ``clear`` forgets the key (after a success).
    Raises :class:`~bastion.protections.ratelimit.errors.StoreUnavailable` when the store cannot
    answer. Keys expire by themselves once the counter has decayed.
    """

    async def record_failure(self, key: str, policy: BackoffPolicy) -> BackoffStatus: ...

    async def status(self, key: str, policy: BackoffPolicy) -> BackoffStatus: ...

    async def clear(self, key: str) -> None: ...


class Store(LimitStore, BackoffStore, Protocol):
    """A store that serves both the limiter and the backoff counter (all shipped stores do)."""
