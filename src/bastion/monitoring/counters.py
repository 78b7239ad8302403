"""Detector counters: :class:`MemoryCounters` (one worker) and :class:`RedisCounters` (shared by
every worker and machine using one Redis, so an attack spread over workers is still seen whole).

Both bound their memory: at most ``MAX_MEMBERS`` members per set (the oldest go first) and, in
memory, at most ``max_keys`` sets (the least recently used go first): an attacker who sprays
keys (IPs, account names) cannot exhaust the process. Redis keys expire with their window.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import TYPE_CHECKING

from bastion.protections.ratelimit.errors import StoreUnavailable

if TYPE_CHECKING:  # the Redis client is imported with the first RedisCounters (~6 MiB)
    from redis.asyncio import Redis

MAX_MEMBERS = 1000
DEFAULT_KEY_PREFIX = "bastion:mon:"
DEFAULT_TIMEOUT_SECONDS = 0.5


class MemoryCounters:
    """A :class:`~bastion.monitoring.interfaces.CounterStore` in this process's memory."""

    def __init__(self, *, max_keys: int = 100_000) -> None:
        self._max_keys = max_keys
        self._sets: OrderedDict[str, OrderedDict[str, float]] = OrderedDict()
        self._marks: OrderedDict[str, float] = OrderedDict()

    async def touch(self, key: str, member: str, now: float, window: float) -> int:
        members = self._sets.get(key)
        if members is None:
            members = self._sets[key] = OrderedDict()
            while len(self._sets) > self._max_keys:
                self._sets.popitem(last=False)
        self._sets.move_to_end(key)
        members.pop(member, None)
        members[member] = now
        self._prune(members, now - window)
        while len(members) > MAX_MEMBERS:
            members.popitem(last=False)
        return len(members)

    async def members(self, key: str, now: float, window: float) -> list[str]:
        members = self._sets.get(key)
        if members is None:
            return []
        oldest = now - window
        self._prune(members, oldest)
        # Exact even if an event arrived out of time order (pruning stops at the first live one).
        return [m for m, touched in members.items() if touched > oldest]

    async def seen(self, key: str, now: float, ttl: float, *, refresh: bool = False) -> bool:
        expiry = self._marks.get(key)
        present = expiry is not None and expiry > now
        if not present or refresh:
            self._marks[key] = now + ttl
            self._marks.move_to_end(key)
            while len(self._marks) > self._max_keys:
                self._marks.popitem(last=False)
        return present

    @staticmethod
    def _prune(members: OrderedDict[str, float], oldest: float) -> None:
        # Members are kept in order of their last touch and one worker's events arrive in time
        # order, so the expired ones are at the front: pop them until the first live one. Each
        # member is removed once, so a touch costs O(1) amortized, not a scan of the window (a
        # scan made every event of a brute-force burst cost milliseconds).
        while members:
            name, touched = next(iter(members.items()))
            if touched > oldest:
                break
            del members[name]


class RedisCounters:
    """A :class:`~bastion.monitoring.interfaces.CounterStore` in Redis: sorted sets scored by
    event time, each update one MULTI/EXEC transaction (atomic across workers)."""

    def __init__(self, client: Redis, *, key_prefix: str = DEFAULT_KEY_PREFIX) -> None:
        from redis.exceptions import RedisError  # noqa: PLC0415 - loaded with the client

        self.client = client
        self._prefix = key_prefix
        self._errors = (TimeoutError, RedisError, OSError)

    @classmethod
    def from_url(cls, url: str, *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> RedisCounters:
        from redis.asyncio import Redis  # noqa: PLC0415 - only where counters live in Redis

        return cls(Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout))

    async def aclose(self) -> None:
        await self.client.aclose()

    async def touch(self, key: str, member: str, now: float, window: float) -> int:
        name = self._prefix + key
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.zadd(name, {member: now})
                pipe.zremrangebyscore(name, "-inf", now - window)
                pipe.zremrangebyrank(name, 0, -(MAX_MEMBERS + 1))
                pipe.expire(name, math.ceil(window) + 1)
                pipe.zcard(name)
                results = await pipe.execute()
        except self._errors as exc:
            raise StoreUnavailable from exc
        return int(results[-1])

    async def members(self, key: str, now: float, window: float) -> list[str]:
        try:
            found = await self.client.zrangebyscore(self._prefix + key, f"({now - window}", "+inf")
        except self._errors as exc:
            raise StoreUnavailable from exc
        return [m.decode() if isinstance(m, bytes) else str(m) for m in found]

    async def seen(self, key: str, now: float, ttl: float, *, refresh: bool = False) -> bool:  # noqa: ARG002 - Redis keeps time
        name = self._prefix + key
        seconds = max(1, math.ceil(ttl))
        try:
            created = await self.client.set(name, b"1", nx=True, ex=seconds)
            if not created and refresh:
                await self.client.expire(name, seconds)
        except self._errors as exc:
            raise StoreUnavailable from exc
        return not created
