"""The Redis store: limits that hold across every worker and machine sharing one Redis.

One decision is one round trip: a Lua script runs atomically on the server, reads the clock with
``TIME`` (so workers with skewed clocks agree), applies every check of the request all-or-nothing,
and writes the new TATs with ``PX`` expiries so keys vanish once their bucket is full again. Scripts
are called by SHA (``EVALSHA``); after a Redis restart or ``SCRIPT FLUSH`` the server answers
``NOSCRIPT`` and the store sends the source once with ``EVAL``, which caches it again.

Every Redis failure (connection refused, timeout, script error) becomes
:class:`~bastion.protections.ratelimit.errors.StoreUnavailable`; what happens next is the
:class:`~bastion.protections.ratelimit.failover.FailoverStore`'s decision, per policy.
Keys are used verbatim: with Redis Cluster, give all keys of one request the same hash tag.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from bastion.protections.ratelimit.backoff import FORGET_BELOW, BackoffPolicy, BackoffStatus
from bastion.protections.ratelimit.errors import StoreUnavailable
from bastion.protections.ratelimit.gcra import NS_PER_MICROSECOND, Decision, untaken
from bastion.protections.ratelimit.interfaces import Check

#: A limiter that waits on a sick Redis stalls every request: give up quickly and fail over.
DEFAULT_TIMEOUT_SECONDS = 0.25
#: One immediate retry replaces a pooled connection that a Redis restart closed.
_RETRIES = 1
US_PER_SECOND = 1_000_000

# KEYS: one bucket per check. ARGV: interval_us, tolerance_us, cost for each check, in order.
# Returns allowed, remaining, retry_after_us, reset_after_us for each check. Writes only if every
# check allows the request (a refused request consumes nothing).
GCRA_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out, pending, order, all_allowed = {}, {}, {}, true
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[3 * i - 2])
  local tolerance = tonumber(ARGV[3 * i - 1])
  local cost = tonumber(ARGV[3 * i])
  local tat = pending[key]
  if tat == nil then tat = tonumber(redis.call('GET', key)) end
  if tat == nil or tat < now then tat = now end
  local new_tat = tat + interval * cost
  local slack = now - (new_tat - tolerance)
  if slack < 0 then
    all_allowed = false
    out[#out + 1] = 0; out[#out + 1] = 0; out[#out + 1] = -slack; out[#out + 1] = tat - now
  else
    if pending[key] == nil then order[#order + 1] = key end
    pending[key] = new_tat
    out[#out + 1] = 1; out[#out + 1] = math.floor(slack / interval)
    out[#out + 1] = 0; out[#out + 1] = new_tat - now
  end
end
if all_allowed then
  for _, key in ipairs(order) do
    local tat = pending[key]
    redis.call('SET', key, string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000))
  end
end
return out
"""

# KEYS[1]: the counter. ARGV: op ('fail' or 'peek'), threshold, base_us, max_us, half_life_us,
# forget_below. Mirrors bastion.protections.ratelimit.backoff. Returns {failures, wait_us}.
BACKOFF_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local threshold, base = tonumber(ARGV[2]), tonumber(ARGV[3])
local max_delay, half_life = tonumber(ARGV[4]), tonumber(ARGV[5])
local forget_below = tonumber(ARGV[6])
local state = redis.call('HMGET', KEYS[1], 'f', 'u', 'b')
local failures = tonumber(state[1]) or 0
local updated = tonumber(state[2]) or now
local blocked = tonumber(state[3]) or 0
if now > updated then failures = failures * math.pow(0.5, (now - updated) / half_life) end
if ARGV[1] == 'fail' then
  failures = failures + 1
  local delay = 0
  if failures > threshold then
    local exponent = failures - threshold - 1
    if exponent >= math.log(max_delay / base) / math.log(2) then
      delay = max_delay
    else
      delay = math.floor(base * math.pow(2, exponent) + 0.5)
    end
  end
  if now + delay > blocked then blocked = now + delay end
  local forget = now
  if failures > forget_below then
    forget = now + math.ceil(math.log(failures / forget_below) / math.log(2) * half_life)
  end
  if blocked > forget then forget = blocked end
  redis.call('HSET', KEYS[1], 'f', string.format('%.17g', failures),
    'u', string.format('%.0f', now), 'b', string.format('%.0f', blocked))
  redis.call('PEXPIRE', KEYS[1], math.ceil((forget - now) / 1000) + 1)
end
local wait = blocked - now
if wait < 0 then wait = 0 end
return {string.format('%.17g', failures), wait}
"""


class _Script:
    """A Lua script called by SHA, resent once when the server has forgotten it."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    async def __call__(self, client: Redis, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await client.eval(self.source, len(keys), *keys, *args)


class RedisStore:
    """A :class:`~bastion.protections.ratelimit.interfaces.Store` in a shared Redis."""

    def __init__(self, client: Redis) -> None:
        self.client = client
        self._gcra = _Script(GCRA_SCRIPT)
        self._backoff = _Script(BACKOFF_SCRIPT)

    @classmethod
    def from_url(cls, url: str, *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> RedisStore:
        """A store on a new connection pool with short timeouts and one immediate retry."""
        client = Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), _RETRIES),
        )
        return cls(client)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def _run(self, script: _Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await script(self.client, keys, args)
        except (TimeoutError, RedisError, OSError) as exc:
            # The cause stays in the traceback for the logs; the client only ever sees the code.
            raise StoreUnavailable from exc

    async def decide(self, checks: Sequence[Check]) -> tuple[Decision, ...]:
        args: list[int] = []
        for check in checks:
            rate = check.rate
            args += (
                rate.interval_ns // NS_PER_MICROSECOND,
                rate.tolerance_ns // NS_PER_MICROSECOND,
                check.cost,
            )
        raw = await self._run(self._gcra, [c.key for c in checks], args)
        decisions = tuple(
            Decision(
                allowed=bool(raw[4 * i]),
                limit=check.rate.burst,
                remaining=int(raw[4 * i + 1]),
                retry_after=int(raw[4 * i + 2]) / US_PER_SECOND,
                reset_after=int(raw[4 * i + 3]) / US_PER_SECOND,
            )
            for i, check in enumerate(checks)
        )
        if all(d.allowed for d in decisions):
            return decisions
        return tuple(untaken(d, c.rate, c.cost) for d, c in zip(decisions, checks, strict=True))

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
