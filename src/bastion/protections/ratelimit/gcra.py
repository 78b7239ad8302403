"""GCRA, the generic cell rate algorithm: token-bucket semantics with one number of state.

A :class:`Rate` allows ``limit`` units per ``period`` seconds on average, and up to ``burst`` units
at once. The only state per key is the *theoretical arrival time* (TAT): the instant at which the
bucket would be full again. Each request of ``cost`` units moves the TAT forward by
``cost * interval``; a request is refused when the new TAT would lie more than ``tolerance``
(``burst * interval``) ahead of now. Once ``now >= TAT`` the bucket is full and the key can be
forgotten, which is why stores can let keys expire by themselves.

Time is an integer count of nanoseconds, so sequences are exact (no float drift between the
memory store, the Redis script and the tests). :func:`evaluate` is pure: the caller supplies
``now`` from its clock and persists the returned TAT when the request is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

NS_PER_SECOND = 1_000_000_000
NS_PER_MICROSECOND = 1_000

#: Longest burst window a rate may describe. The Redis script works in microseconds on Lua
#: doubles; ten years keeps every TAT far below 2**53 so the arithmetic stays exact.
MAX_TOLERANCE_NS = 10 * 365 * 86_400 * NS_PER_SECOND


@dataclass(frozen=True, slots=True)
class Rate:
    """``limit`` units per ``period`` seconds, with bursts of up to ``burst`` units."""

    limit: int
    period: float
    burst: int
    interval_ns: int = field(init=False, repr=False, compare=False)
    tolerance_ns: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.limit < 1 or self.burst < 1 or self.period <= 0:
            raise ValueError("a rate needs limit >= 1, burst >= 1 and period > 0")
        # At least one microsecond: the Redis store counts in microseconds.
        interval = max(NS_PER_MICROSECOND, round(self.period * NS_PER_SECOND / self.limit))
        interval -= interval % NS_PER_MICROSECOND
        tolerance = interval * self.burst
        if tolerance > MAX_TOLERANCE_NS:
            raise ValueError("the burst window of a rate may not exceed ten years")
        object.__setattr__(self, "interval_ns", interval)
        object.__setattr__(self, "tolerance_ns", tolerance)

    @classmethod
    def per(cls, limit: int, period: float, *, burst: int | None = None) -> Rate:
        """``limit`` per ``period`` seconds; the burst defaults to the limit."""
        return cls(limit=limit, period=period, burst=limit if burst is None else burst)


_new_tuple = tuple.__new__


class Decision(NamedTuple):
    """The answer for one key (a named tuple: built on every request, so it must be cheap).

    ``remaining``: units still available after this request. ``reset_after``: seconds until the
    bucket is full again. ``retry_after``: seconds until the refused request would be allowed
    (0 when allowed). ``limit``: the bucket's capacity (the rate's burst).
    """

    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    retry_after: float


def evaluate(tat_ns: int | None, now_ns: int, rate: Rate, cost: int = 1) -> tuple[Decision, int]:
    """Decide a request of ``cost`` units against the stored TAT (``None``: unknown key).

    Returns the decision and the TAT to store: the advanced TAT when allowed, else the old one.
    """
    if cost < 1:
        raise ValueError("cost must be at least 1")
    tat = now_ns if tat_ns is None or tat_ns < now_ns else tat_ns
    new_tat = tat + rate.interval_ns * cost
    # How far `now` lies beyond the earliest instant this request could be allowed.
    slack = now_ns - (new_tat - rate.tolerance_ns)
    # Built with tuple.__new__ and the fields in order: a named tuple's own __new__ is a Python
    # function, which costs more than the rest of this function on this hot path.
    if slack < 0:
        retry_after = -slack / NS_PER_SECOND
        refused = (False, rate.burst, 0, (tat - now_ns) / NS_PER_SECOND, retry_after)
        return _new_tuple(Decision, refused), tat
    remaining = slack // rate.interval_ns
    reset_after = (new_tat - now_ns) / NS_PER_SECOND
    return _new_tuple(Decision, (True, rate.burst, remaining, reset_after, 0.0)), new_tat


def untaken(decision: Decision, rate: Rate, cost: int = 1) -> Decision:
    """An allowing decision as if its units had not been taken (another check refused them)."""
    if not decision.allowed:
        return decision
    return Decision(
        allowed=True,
        limit=decision.limit,
        remaining=decision.remaining + cost,
        reset_after=max(0.0, decision.reset_after - rate.interval_ns * cost / NS_PER_SECOND),
        retry_after=0.0,
    )
