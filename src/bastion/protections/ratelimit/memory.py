"""The in-process store: the default for a single worker, and the fallback when Redis is down.

State lives in bounded tables. An attacker who rotates keys (spoofed users, IPv6 addresses, OAuth
client ids) must not exhaust the worker's memory, so each table holds at most ``max_keys``
entries: expired entries are swept a few at a time, and when the table is still full the least
recently used entry is evicted. A hot key (an attacker hammering one bucket) is always recently
used, so eviction forgets cold buckets first; evictions are counted for monitoring.

Decisions run without awaiting anything, so they are atomic within one event loop. The store is
not thread-safe: use one per event loop.
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Generic, TypeVar

from bastion.protections.ratelimit import backoff
from bastion.protections.ratelimit.backoff import BackoffPolicy, BackoffState, BackoffStatus
from bastion.protections.ratelimit.gcra import Decision, Rate, evaluate, untaken
from bastion.protections.ratelimit.interfaces import Check, Ticker

#: Entries per table; about 150 bytes each, so the default caps a table near 15 MB.
DEFAULT_MAX_KEYS = 100_000
#: Every this many writes, look at the oldest entries and drop the expired ones.
SWEEP_EVERY = 256
#: How many of the oldest entries one sweep looks at (keeps each call O(1)).
SWEEP_BATCH = 64

V = TypeVar("V")


class BoundedTable(Generic[V]):
    """A dict of expiring values with at most ``max_keys`` entries, least recently used first."""

    def __init__(self, max_keys: int) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.max_keys = max_keys
        self.evictions = 0
        self._data: OrderedDict[str, tuple[V, int]] = OrderedDict()
        self._writes = 0

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str, now_ns: int) -> V | None:
        entry = self._data.get(key)
        if entry is None or entry[1] <= now_ns:
            return None
        return entry[0]

    def put(self, key: str, value: V, expires_ns: int, now_ns: int) -> None:
        data = self._data
        data[key] = (value, expires_ns)
        data.move_to_end(key)
        self._writes += 1
        if self._writes % SWEEP_EVERY == 0:
            self.sweep(now_ns)
        if len(data) > self.max_keys:
            self.sweep(now_ns)
            while len(data) > self.max_keys:
                _, (_, expires) = data.popitem(last=False)
                if expires > now_ns:
                    self.evictions += 1

    def touch(self, key: str) -> None:
        """Mark ``key`` as recently used without changing it."""
        if key in self._data:
            self._data.move_to_end(key)

    def pop(self, key: str) -> None:
        self._data.pop(key, None)

    def sweep(self, now_ns: int) -> None:
        """Drop expired entries among the least recently used ``SWEEP_BATCH``."""
        data = self._data
        oldest = list(itertools.islice(data.items(), SWEEP_BATCH))
        for key, (_, expires) in oldest:
            if expires <= now_ns:
                del data[key]


class MemoryStore:
    """A :class:`~bastion.protections.ratelimit.interfaces.Store` in this process's memory."""

    def __init__(self, *, max_keys: int = DEFAULT_MAX_KEYS, ticker: Ticker | None = None) -> None:
        self._now = ticker or time.monotonic_ns
        self._tats: BoundedTable[int] = BoundedTable(max_keys)
        self._failures: BoundedTable[BackoffState] = BoundedTable(max_keys)

    @property
    def evictions(self) -> int:
        """Live entries dropped because a table was full (a sign of key-rotation abuse)."""
        return self._tats.evictions + self._failures.evictions

    @property
    def size(self) -> int:
        """Entries held (not ``__len__``: an empty store must not be falsy)."""
        return len(self._tats) + len(self._failures)

    async def decide(self, checks: Sequence[Check]) -> tuple[Decision, ...]:
        return self.decide_now(checks)

    def take_one(self, key: str, rate: Rate) -> int | None:
        """One unit from the bucket ``key`` at ``rate``, as :meth:`decide_now` takes it for one
        check of cost 1; returns nanoseconds until the bucket is full again, or ``None`` when
        the request is refused, with nothing taken and nothing touched (decide it with
        :meth:`decide_now` to get the refusal). No object is made but the stored entry: the
        limiter's path for an allowed request."""
        now = self._now()
        tats = self._tats
        # BoundedTable.get and gcra.evaluate, inlined (same package): hot path.
        entry = tats._data.get(key)  # noqa: SLF001
        tat = entry[0] if entry is not None and entry[1] > now and entry[0] > now else now
        new_tat = tat + rate.interval_ns
        until_full = new_tat - now
        if until_full > rate.tolerance_ns:  # gcra.evaluate's slack < 0
            return None
        tats.put(key, new_tat, new_tat, now)
        return until_full

    def take_each(self, buckets: Sequence[tuple[str, Rate]]) -> list[int] | None:
        """One unit from each of ``buckets`` (distinct keys), all or none, as
        :meth:`decide_now` takes them for checks of cost 1: nanoseconds until each bucket is
        full again, or ``None`` when any refuses, with nothing taken and nothing touched."""
        now = self._now()
        tats = self._tats
        data = tats._data  # noqa: SLF001 - BoundedTable.get inlined (same module): hot path
        new_tats: list[int] = []
        for key, rate in buckets:
            entry = data.get(key)
            tat = entry[0] if entry is not None and entry[1] > now and entry[0] > now else now
            new_tat = tat + rate.interval_ns
            if new_tat - now > rate.tolerance_ns:  # gcra.evaluate's slack < 0
                return None
            new_tats.append(new_tat)
        for (key, _), new_tat in zip(buckets, new_tats, strict=True):
            tats.put(key, new_tat, new_tat, now)
        return [new_tat - now for new_tat in new_tats]

    def decide_now(self, checks: Sequence[Check]) -> tuple[Decision, ...]:
        """The synchronous core of :meth:`decide` (same contract)."""
        now = self._now()
        tats = self._tats
        if len(checks) == 1:  # the common case, without the bookkeeping below
            check = checks[0]
            key = check.key
            # BoundedTable.get, inlined (same module): hot path.
            entry = tats._data.get(key)  # noqa: SLF001
            stored = entry[0] if entry is not None and entry[1] > now else None
            decision, tat = evaluate(stored, now, check.rate, check.cost)
            if decision.allowed:
                tats.put(key, tat, tat, now)
            else:
                # A refused key stays recently used: rotating other keys must not evict it and
                # hand its owner a fresh bucket.
                tats.touch(key)
            return (decision,)
        pending: dict[str, int] = {}
        decisions = []
        for check in checks:
            stored = pending[check.key] if check.key in pending else tats.get(check.key, now)
            decision, tat = evaluate(stored, now, check.rate, check.cost)
            if decision.allowed:
                pending[check.key] = tat
            decisions.append(decision)
        if all(d.allowed for d in decisions):
            for key, tat in pending.items():
                tats.put(key, tat, tat, now)
            return tuple(decisions)
        for check in checks:
            tats.touch(check.key)
        return tuple(untaken(d, c.rate, c.cost) for d, c in zip(decisions, checks, strict=True))

    async def record_failure(self, key: str, policy: BackoffPolicy) -> BackoffStatus:
        now = self._now()
        state, status = backoff.record_failure(self._failures.get(key, now), now, policy)
        self._failures.put(key, state, backoff.forget_at_ns(state, policy), now)
        return status

    async def status(self, key: str, policy: BackoffPolicy) -> BackoffStatus:
        return self.status_now(key, policy)

    def status_now(self, key: str, policy: BackoffPolicy) -> BackoffStatus:
        """:meth:`status` without a coroutine (this store never waits)."""
        now = self._now()
        return backoff.status_of(self._failures.get(key, now), now, policy)

    async def clear(self, key: str) -> None:
        self.clear_now(key)

    def clear_now(self, key: str) -> None:
        """:meth:`clear` without a coroutine."""
        self._failures.pop(key)
