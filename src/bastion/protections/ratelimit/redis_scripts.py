"""The Lua scripts of the Redis store, and how they are called.

Both scripts read the clock with ``TIME`` on the server, so workers with skewed clocks agree, and
set expiries so keys vanish by themselves. Scripts are called by SHA (``EVALSHA``); after a Redis
restart or ``SCRIPT FLUSH`` the server answers ``NOSCRIPT`` and the source is sent once with
``EVAL``, which caches it again. Time in the scripts is integer microseconds (exact on Lua
doubles, see :data:`bastion.protections.ratelimit.gcra.MAX_TOLERANCE_NS`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

# KEYS: the buckets of every decision, in order. ARGV[1]: the number of decisions; then the
# number of checks of each decision; then interval_us, tolerance_us and cost of each check.
# Returns allowed, remaining, retry_after_us, reset_after_us for each check. Each decision is
# all-or-nothing: its buckets are written only if every one of its checks allows the request.
# Decisions are applied one after the other, exactly as if each had its own call.
GCRA_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local decisions = tonumber(ARGV[1])
local out, k, a = {}, 0, 1 + decisions
for d = 2, decisions + 1 do
  local pending, order, all_allowed = {}, {}, true
  for _ = 1, tonumber(ARGV[d]) do
    k = k + 1
    local key = KEYS[k]
    local interval, tolerance = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
    local cost = tonumber(ARGV[a + 3])
    a = a + 3
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


class Script:
    """A Lua script called by SHA, resent once when the server has forgotten it."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    async def __call__(self, client: Redis, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await client.eval(self.source, len(keys), *keys, *args)
