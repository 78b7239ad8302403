"""The Redis store: limits that hold across every worker and machine sharing one Redis.

Each decision is carried by exactly one call of a Lua script (:mod:`.redis_scripts`), one round
trip, which runs atomically on the server, applies every check of the request all-or-nothing with
the server's clock, and writes the new TATs with expiries.

Under load, decisions are *coalesced*: a worker keeps at most ``max_in_flight`` script calls in
flight; requests that arrive meanwhile wait for the next call, which carries all of them. An idle
worker sends each request at once (no added latency); a busy one sends one command instead of
dozens, which is where a Python client spends its time, and holds at most ``max_in_flight``
Redis connections however many requests it serves. The script applies the decisions of one
call one after the other, exactly as separate calls would.

Every Redis failure (connection refused, timeout, script error) becomes
:class:`~bastion.protections.ratelimit.errors.StoreUnavailable`; what happens next is the
:class:`~bastion.protections.ratelimit.failover.FailoverStore`'s decision, per policy.
Keys are used verbatim: with Redis Cluster, give all keys of one call the same hash tag.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from bastion.protections.ratelimit.backoff import FORGET_BELOW, BackoffPolicy, BackoffStatus
from bastion.protections.ratelimit.errors import StoreUnavailable
from bastion.protections.ratelimit.gcra import NS_PER_MICROSECOND, Decision, untaken
from bastion.protections.ratelimit.interfaces import DEFAULT_TIMEOUT_SECONDS, Check
from bastion.protections.ratelimit.redis_scripts import BACKOFF_SCRIPT, GCRA_SCRIPT, Script

#: One immediate retry replaces a pooled connection that a Redis restart closed. (Should a reply
#: be lost after the script ran, the retry counts the request twice: the strict direction.)
_RETRIES = 1
#: Script calls one worker keeps in flight before it starts coalescing the next requests.
DEFAULT_MAX_IN_FLIGHT = 2
#: Most keys in one coalesced call; more pending decisions are split over several calls.
MAX_KEYS_PER_CALL = 512
US_PER_SECOND = 1_000_000

_Pending = tuple[Sequence[Check], "asyncio.Future[tuple[Decision, ...]]"]


class RedisStore:
    """A :class:`~bastion.protections.ratelimit.interfaces.Store` in a shared Redis."""

    def __init__(
        self, client: Redis, *, coalesce: bool = True, max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.client = client
        self.coalesce = coalesce
        self.max_in_flight = max_in_flight
        self._in_flight = 0
        self._gcra = Script(GCRA_SCRIPT)
        self._backoff = Script(BACKOFF_SCRIPT)
        self._queue: deque[_Pending] = deque()
        self._sending: set[asyncio.Task[None]] = set()

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        coalesce: bool = True,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> RedisStore:
        """A store on a new connection pool with short timeouts and one immediate retry."""
        client = Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), _RETRIES),
        )
        return cls(client, coalesce=coalesce, max_in_flight=max_in_flight)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def _run(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await script(self.client, keys, args)
        except (TimeoutError, RedisError, OSError) as exc:
            # The cause stays in the traceback for the logs; the client only ever sees the code.
            raise StoreUnavailable from exc

    # -- limits ------------------------------------------------------------------------------

    async def decide(self, checks: Sequence[Check]) -> tuple[Decision, ...]:
        if not checks:
            return ()
        if not self.coalesce or self._in_flight < self.max_in_flight:
            # A free slot: this request goes out at once, from its own task (no added latency).
            self._in_flight += 1
            try:
                return (await self._decide_all([checks]))[0]
            finally:
                self._in_flight -= 1
                self._drain()
        # Every slot is busy: wait for the next call, which carries every request queued by then.
        future: asyncio.Future[tuple[Decision, ...]] = asyncio.get_running_loop().create_future()
        self._queue.append((checks, future))
        return await future

    def _drain(self) -> None:
        """Send the queued requests in one call, if a slot is free."""
        if not self._queue or self._in_flight >= self.max_in_flight:
            return
        batch: list[_Pending] = []
        keys = 0
        while self._queue and (not batch or keys + len(self._queue[0][0]) <= MAX_KEYS_PER_CALL):
            item = self._queue.popleft()
            batch.append(item)
            keys += len(item[0])
        self._in_flight += 1
        task = asyncio.ensure_future(self._send(batch))
        self._sending.add(task)  # a reference, so the task is not garbage collected mid-flight
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[_Pending]) -> None:
        try:
            results = await self._decide_all([checks for checks, _ in batch])
        except BaseException as exc:
            for _, future in batch:
                if not future.done():
                    error = StoreUnavailable()
                    error.__cause__ = exc.__cause__ or exc
                    future.set_exception(error)
            if not isinstance(exc, StoreUnavailable):
                raise
        else:
            for (_, future), decisions in zip(batch, results, strict=True):
                if not future.done():  # the request may have been cancelled meanwhile
                    future.set_result(decisions)
        finally:
            self._in_flight -= 1
            self._drain()

    async def _decide_all(self, groups: Sequence[Sequence[Check]]) -> list[tuple[Decision, ...]]:
        keys: list[str] = []
        args: list[int] = [len(groups), *(len(g) for g in groups)]
        for checks in groups:
            for check in checks:
                keys.append(check.key)
                args += (
                    check.rate.interval_ns // NS_PER_MICROSECOND,
                    check.rate.tolerance_ns // NS_PER_MICROSECOND,
                    check.cost,
                )
        raw = await self._run(self._gcra, keys, args)
        results: list[tuple[Decision, ...]] = []
        offset = 0
        for checks in groups:
            decisions = tuple(_decision(raw, offset + i, c) for i, c in enumerate(checks))
            offset += len(checks)
            if not all(d.allowed for d in decisions):
                decisions = tuple(
                    untaken(d, c.rate, c.cost) for d, c in zip(decisions, checks, strict=True)
                )
            results.append(decisions)
        return results

    # -- failure backoff ---------------------------------------------------------------------

    async def record_failure(self, key: str, policy: BackoffPolicy) -> BackoffStatus:
        return await self._backoff_op("fail", key, policy)

    async def status(self, key: str, policy: BackoffPolicy) -> BackoffStatus:
        return await self._backoff_op("peek", key, policy)

    async def clear(self, key: str) -> None:
        try:
            await self.client.delete(key)
        except (TimeoutError, RedisError, OSError) as exc:
            raise StoreUnavailable from exc

    async def _backoff_op(self, op: str, key: str, policy: BackoffPolicy) -> BackoffStatus:
        args = (
            op,
            policy.threshold,
            round(policy.base_delay * US_PER_SECOND),
            round(policy.max_delay * US_PER_SECOND),
            round(policy.half_life * US_PER_SECOND),
            FORGET_BELOW,
        )
        failures, wait_us = await self._run(self._backoff, [key], args)
        return BackoffStatus(failures=float(failures), retry_after=int(wait_us) / US_PER_SECOND)


def _decision(raw: Sequence[Any], index: int, check: Check) -> Decision:
    base = 4 * index
    return Decision(
        allowed=bool(raw[base]),
        limit=check.rate.burst,
        remaining=int(raw[base + 1]),
        retry_after=int(raw[base + 2]) / US_PER_SECOND,
        reset_after=int(raw[base + 3]) / US_PER_SECOND,
    )
