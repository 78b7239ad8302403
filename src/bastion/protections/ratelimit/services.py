"""The rate limiter and the failure backoff: the services the middleware, the per-route
dependency and the identity code call.

:class:`RateLimiter` turns the policies that apply to a request into one all-or-nothing store
call and returns a :class:`Verdict`. Crossing a limit records one ``protections:ratelimit:exceeded``
audit event per bucket per window, not one per refused request: a flood of refused requests must
not become a flood of audit writes (audit log exhaustion). The deduplication runs first in this
worker's memory, then in the shared store, so all workers together record one event.

:class:`FailureBackoff` is the decaying failure counter for passwords, TOTP and recovery codes.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Awaitable, Sequence
from typing import Any, NamedTuple

from prometheus_client import CollectorRegistry, Counter
from starlette.types import Scope

from bastion.audit.events import AuditEvent, EventType, Outcome
from bastion.audit.interfaces import AuditRecorder
from bastion.clock import Clock, SystemClock
from bastion.http.middleware.audit_rejections import route_path
from bastion.protections.ratelimit import headers
from bastion.protections.ratelimit.backoff import BackoffPolicy, BackoffStatus
from bastion.protections.ratelimit.errors import RateLimited, StoreUnavailable, TooManyAttempts
from bastion.protections.ratelimit.gcra import NS_PER_SECOND, Decision, Rate
from bastion.protections.ratelimit.interfaces import (
    BackoffStore,
    Check,
    FailureMode,
    LimitStore,
    Ticker,
)
from bastion.protections.ratelimit.keys import (
    DEFAULT_IPV6_PREFIX,
    STATE_CLIENT_IP,
    STATE_OAUTH_CLIENT_ID,
    STATE_USER_ID,
    UNKNOWN_IP,
    Identity,
    bucket_key,
    identity_of,
)
from bastion.protections.ratelimit.memory import MemoryStore
from bastion.protections.ratelimit.policies import Applied, KeyKind, Policy, PolicyTable

DEFAULT_KEY_PREFIX = "bastion:"
#: ``scope["state"]`` entry where the middleware publishes the limiter for the route dependency.
STATE_LIMITER = "bastion.rate_limiter"
#: However long a policy's window, an ongoing attack is reported again after this many seconds.
MAX_REPORT_INTERVAL_SECONDS = 3600.0
#: Buckets whose first refusal this worker remembers (bounded: key rotation must not grow it).
REPORT_MEMORY_KEYS = 10_000
#: Store keys remembered per (policy, route, identity): hashing is the costly part of a key.
KEY_CACHE_SIZE = 8192
#: Identities with longer user or client ids are hashed every time, never remembered.
KEY_CACHE_MAX_ID = 256
#: Longest user agent recorded in an audit event.
MAX_AUDITED_USER_AGENT = 512


class Verdict(NamedTuple):
    """The limiter's answer for one request: ``allowed``, else ``reason`` says why not.

    A named tuple (immutable, like :class:`~bastion.protections.ratelimit.gcra.Decision`): one
    is built per request, and a frozen dataclass costs several times more to build.
    """

    results: tuple[tuple[Policy, Decision], ...] = ()
    allowed: bool = True

    @property
    def reason(self) -> str | None:
        return None if self.allowed else RateLimited.code

    @property
    def violated(self) -> tuple[Policy, ...]:
        return tuple(p for p, d in self.results if not d.allowed)

    def headers(self) -> list[tuple[bytes, bytes]]:
        """RateLimit-Policy and RateLimit, plus Retry-After when refused (raw ASGI headers)."""
        return headers.fields(self.results, refused=not self.allowed)

    def error(self) -> RateLimited:
        """The 429 to answer a refused request with, carrying this verdict's headers."""
        names = ", ".join(p.name for p in self.violated)
        return RateLimited(
            f"Rate limit exceeded ({names}); retry later.",
            retry_after=headers.retry_after(self.results),
            headers={
                "RateLimit-Policy": headers.policy_field([p for p, _ in self.results]),
                "RateLimit": headers.limit_field(self.results),
            },
            violated=[p.name for p in self.violated],
        )


_new_tuple = tuple.__new__

#: The verdict when no policy applies (or none has a key for this caller): allowed, no headers.
_NOTHING_APPLIES = Verdict()

#: What :meth:`RateLimiter.check` needs per request: the caller, then the policies that count it
#: and their checks, in the same order.
_Plan = tuple[Identity, tuple[Policy, ...], tuple[Check, ...]]
#: A raw ASGI header.
_Header = tuple[bytes, bytes]
#: ``RateLimit-Policy`` and ``RateLimit`` (see :meth:`RateLimiter.admit`).
_Headers = tuple[_Header, _Header]
#: What :meth:`RateLimiter.admit` needs: the policies that count the request with their store
#: keys (distinct), and its ``RateLimit-Policy`` header (the same for every request).
_Lane = tuple[tuple[tuple[Policy, str, Rate], ...], _Header]
#: A remembered plan: the ``applied`` it was made for, the plan, the lane if there is one.
_Entry = tuple[Sequence[Applied], _Plan, _Lane | None]


class RateLimiter:
    """Applies composable policies to requests through one :class:`LimitStore`."""

    def __init__(
        self,
        store: LimitStore,
        policies: PolicyTable | Sequence[Policy],
        *,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        audit: AuditRecorder | None = None,
        clock: Clock | None = None,
        ticker: Ticker | None = None,
        ipv6_prefix: int = DEFAULT_IPV6_PREFIX,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.store = store
        self.table = policies if isinstance(policies, PolicyTable) else PolicyTable(policies)
        self.key_prefix = f"{key_prefix}rl:"
        self.audit = audit
        self.clock = clock or SystemClock()
        self.ipv6_prefix = ipv6_prefix
        self._reported = MemoryStore(max_keys=REPORT_MEMORY_KEYS, ticker=ticker)
        self._keys: dict[tuple[str, str, Identity], str | None] = {}
        self._plans: dict[tuple[int, object, object, object], _Entry] = {}
        self._per_user: dict[int, tuple[tuple[Applied, ...], tuple[Applied, ...]]] = {}
        self._exceeded = Counter(
            "bastion_ratelimit_exceeded",
            "Requests refused, by violated policy.",
            ["policy"],
            registry=registry if registry is not None else CollectorRegistry(),
        )

    def applicable(self, method: str, path: str) -> tuple[Applied, ...]:
        return self.table.match(method, path)

    def per_user(self, method: str, path: str) -> tuple[Applied, ...]:
        """The policies for ``method path`` that are counted per user.

        The middleware runs before authentication, so for a request whose user is not known
        yet it skips these (no key); the authentication layer counts them once it knows the
        user (see :meth:`check`). The answer is one stable tuple per table match, so the plan
        cache of :meth:`check` recognises it.
        """
        applied = self.table.match(method, path)
        entry = self._per_user.get(id(applied))
        if entry is not None and entry[0] is applied:
            return entry[1]
        chosen = tuple(item for item in applied if KeyKind.USER in item[0].keys)
        if len(self._per_user) >= KEY_CACHE_SIZE:
            self._per_user.clear()
        # Holding ``applied`` keeps its id from being reused while the entry lives.
        self._per_user[id(applied)] = (applied, chosen)
        return chosen

    async def check(self, scope: Scope, applied: Sequence[Applied]) -> Verdict:
        """Take one unit from every bucket of ``applied``, or from none if any is exhausted.

        Raises :class:`StoreUnavailable` when a fail-closed policy cannot be decided.
        """
        verdict = self.decide(scope, applied)
        if isinstance(verdict, Verdict):
            return verdict
        return await verdict

    def admit(self, scope: Scope, applied: Sequence[Applied]) -> _Headers | None:
        """The common case of :meth:`decide`, decided without building a verdict: the store is
        the in-process one, and it allows the request for every policy that counts it (their
        buckets distinct). Takes the units and returns the request's ``RateLimit-Policy`` and
        ``RateLimit`` headers (:meth:`Verdict.headers`); ``None`` (nothing taken) when the case
        is another one or the request is refused: :meth:`decide` it then."""
        lane = self._plan_entry(scope, applied)[2]
        store = self.store
        if lane is None or type(store) is not MemoryStore:
            return None
        buckets, policy_header = lane
        if len(buckets) == 1:
            policy, key, rate = buckets[0]
            until_full = store.take_one(key, rate)
            if until_full is None:
                return None
            # headers.fields for one allowed decision: remaining units, seconds until full.
            remaining = (rate.tolerance_ns - until_full) // rate.interval_ns
            window = math.ceil(until_full / NS_PER_SECOND)
            value = b"%b%d;t=%d" % (policy.limit_prefix, remaining, window)
            return policy_header, (headers.RATELIMIT, value)
        taken = store.take_each([(key, rate) for _, key, rate in buckets])
        if taken is None:
            return None
        # headers.limit_field for allowed decisions, item by item as above.
        value = b", ".join(
            [
                b"%b%d;t=%d"
                % (
                    policy.limit_prefix,
                    (rate.tolerance_ns - until_full) // rate.interval_ns,
                    math.ceil(until_full / NS_PER_SECOND),
                )
                for (policy, _, rate), until_full in zip(buckets, taken, strict=True)
            ]
        )
        return policy_header, (headers.RATELIMIT, value)

    def decide(self, scope: Scope, applied: Sequence[Applied]) -> Verdict | Awaitable[Verdict]:
        """:meth:`check`, answered without awaiting when it can be: a :class:`Verdict` when
        nothing applies or the in-process store allowed the request, else an awaitable of one
        (a store that must be awaited; a refusal, which is counted and reported). The units
        are taken either way: await the awaitable. Its errors are those of :meth:`check`."""
        identity, policies, checks = self._plan(scope, applied)
        if not checks:
            return _NOTHING_APPLIES
        if type(self.store) is MemoryStore:
            # The in-process store decides without awaiting (its ``decide`` only wraps this):
            # no coroutine per request on the default single-worker setup.
            decisions = self.store.decide_now(checks)
            if len(decisions) == 1:  # the common case, without zip and all()
                decision = decisions[0]
                if decision.allowed:
                    # tuple.__new__: a named tuple's own __new__ is a Python call (see gcra).
                    return _new_tuple(Verdict, (((policies[0], decision),), True))
            return self._conclude(scope, identity, policies, checks, decisions)
        return self._decide_in_store(scope, identity, policies, checks)

    async def _decide_in_store(
        self,
        scope: Scope,
        identity: Identity,
        policies: tuple[Policy, ...],
        checks: tuple[Check, ...],
    ) -> Verdict:
        decisions = await self.store.decide(checks)
        return await self._conclude(scope, identity, policies, checks, decisions)

    async def _conclude(
        self,
        scope: Scope,
        identity: Identity,
        policies: tuple[Policy, ...],
        checks: tuple[Check, ...],
        decisions: Sequence[Decision],
    ) -> Verdict:
        """The verdict for ``decisions``; each refusing policy counted and reported once."""
        verdict = Verdict(
            tuple(zip(policies, decisions, strict=True)), all(d.allowed for d in decisions)
        )
        if not verdict.allowed:
            for policy, check, decision in zip(policies, checks, decisions, strict=True):
                if not decision.allowed:
                    self._exceeded.labels(policy.name).inc()
                    await self._report_once(scope, identity, policy, check.key, decision)
        return verdict

    def _plan(self, scope: Scope, applied: Sequence[Applied]) -> _Plan:
        """Who the request is counted as, and the policies and checks that apply to it."""
        return self._plan_entry(scope, applied)[1]

    def _plan_entry(self, scope: Scope, applied: Sequence[Applied]) -> _Entry:
        """``applied``, the plan and the lane of :meth:`admit`, remembered per (``applied``,
        client IP, user, OAuth client): a caller repeats its routes, and each key costs a hash.
        ``applied`` is matched by identity (the policy table hands out one tuple per path, the
        dependency keeps its own) and is held by the entry, so its id cannot be reused while
        the entry lives. Only plain strings are remembered: they are what :func:`identity_of`
        makes of them, and nothing else equals a string.
        """
        state = scope.get("state") or {}
        ip = state.get(STATE_CLIENT_IP)
        if not ip:
            client = scope.get("client")
            ip = client[0] if client else UNKNOWN_IP
        user = state.get(STATE_USER_ID)
        client_id = state.get(STATE_OAUTH_CLIENT_ID)
        memo = (id(applied), ip, user, client_id)
        try:
            entry = self._plans.get(memo)
        except TypeError:  # an unhashable id in the state: decided without the cache
            return self._entry(scope, applied)
        if entry is not None and entry[0] is applied:
            return entry
        entry = self._entry(scope, applied)
        if (
            type(applied) is tuple
            and type(ip) is str
            and (user is None or type(user) is str)
            and (client_id is None or type(client_id) is str)
            and len(ip) + len(user or "") + len(client_id or "") <= KEY_CACHE_MAX_ID
        ):
            if len(self._plans) >= KEY_CACHE_SIZE:
                self._plans.clear()
            self._plans[memo] = entry
        return entry

    def _entry(self, scope: Scope, applied: Sequence[Applied]) -> _Entry:
        plan = self._build_plan(scope, applied)
        _, policies, checks = plan
        lane: _Lane | None = None
        keys = [check.key for check in checks]
        if checks and len(set(keys)) == len(keys) and type(self.store) is MemoryStore:
            buckets = tuple(
                (policy, check.key, check.rate)
                for policy, check in zip(policies, checks, strict=True)
            )
            field = headers.policy_field(policies).encode("ascii")
            lane = (buckets, (headers.RATELIMIT_POLICY, field))
        return applied, plan, lane

    def _build_plan(self, scope: Scope, applied: Sequence[Applied]) -> _Plan:
        identity = identity_of(scope, ipv6_prefix=self.ipv6_prefix)
        policies: list[Policy] = []
        checks: list[Check] = []
        for item in applied:
            key = self._key(item, identity)
            if key is not None:
                policy = item[0]
                policies.append(policy)
                checks.append(Check(key, policy.rate, 1, policy.failure_mode))
        return identity, tuple(policies), tuple(checks)

    def _key(self, applied: Applied, identity: Identity) -> str | None:
        memo = (applied[0].name, applied[1], identity)
        if memo in self._keys:
            return self._keys[memo]
        key = bucket_key(self.key_prefix, applied, identity)
        if len(identity.user or "") + len(identity.client or "") <= KEY_CACHE_MAX_ID:
            if len(self._keys) >= KEY_CACHE_SIZE:
                self._keys.clear()
            self._keys[memo] = key
        return key

    async def _report_once(
        self, scope: Scope, identity: Identity, policy: Policy, key: str, decision: Decision
    ) -> None:
        window = min(policy.rate.tolerance_ns / NS_PER_SECOND, MAX_REPORT_INTERVAL_SECONDS)
        once = Check(f"{key}:reported", Rate.per(1, window), 1, FailureMode.FAIL_OPEN)
        if not self._reported.decide_now([once])[0].allowed:
            return
        try:
            first = (await self.store.decide([once]))[0].allowed
        except StoreUnavailable:
            first = True  # better a duplicate event than a lost one
        if first and self.audit is not None:
            self.audit.record(self._event(scope, identity, policy, key, decision))

    def _event(
        self, scope: Scope, identity: Identity, policy: Policy, key: str, decision: Decision
    ) -> AuditEvent:
        state: dict[str, Any] = scope.get("state") or {}
        client = scope.get("client")
        user_agent = next((v for k, v in scope.get("headers", ()) if k == b"user-agent"), b"")
        return AuditEvent(
            type=EventType.RATELIMIT_LIMIT_EXCEEDED,
            outcome=Outcome.FAILURE,
            time=self.clock.now(),
            actor=identity.user,
            subject=policy.name,
            client_ip=state.get(STATE_CLIENT_IP) or (client[0] if client else None),
            user_agent=user_agent[:MAX_AUDITED_USER_AGENT].decode("latin-1") or None,
            request_id=state.get("request_id"),
            reason=RateLimited.code,
            details={
                "policy": policy.name,
                "key": key.rsplit(":", 1)[-1],
                "keys": [k.value for k in policy.keys],
                "quota": policy.rate.burst,
                "window_seconds": policy.rate.tolerance_ns / NS_PER_SECOND,
                "retry_after_seconds": round(decision.retry_after, 3),
                "method": scope.get("method"),
                # The route template, not the path: a token in a path must not reach the log.
                "path": route_path(scope),
                "oauth_client": identity.client,
            },
        )


class FailureBackoff:
    """Exponential backoff after failed secret checks (password, TOTP, recovery code).

    Call :meth:`check` before verifying, :meth:`failed` after a wrong secret, :meth:`succeeded`
    after a right one. Key it by account *and* client IP, and record failures for unknown accounts
    too: otherwise the backoff reveals which accounts exist (user enumeration), and one attacker
    could lock a victim out from anywhere. Pair it with the login rate limit, which bounds the
    guesses that race past ``check`` concurrently.
    """

    def __init__(
        self, store: BackoffStore, policy: BackoffPolicy, *, key_prefix: str = DEFAULT_KEY_PREFIX
    ) -> None:
        self.store = store
        self.policy = policy
        self._prefix = f"{key_prefix}bo:{policy.name}:"
        self._keys: dict[tuple[str, ...], str] = {}

    def key(self, *parts: str) -> str:
        """The store key of ``parts`` (a hash: the store never sees addresses or IPs).
        Remembered for short parts (a login asks the same account's key before and after its
        password check), at most :data:`KEY_CACHE_SIZE` at a time."""
        known = self._keys.get(parts)
        if known is not None:
            return known
        material = b"".join(b"%d:%b" % (len(p.encode()), p.encode()) for p in parts)
        key = self._prefix + hashlib.blake2b(material, digest_size=16).hexdigest()
        if sum(map(len, parts)) <= KEY_CACHE_MAX_ID:
            if len(self._keys) >= KEY_CACHE_SIZE:
                self._keys.clear()
            self._keys[parts] = key
        return key

    async def check(self, *parts: str) -> None:
        """Raises :class:`TooManyAttempts` while the caller must wait."""
        status = await self.store.status(self.key(*parts), self.policy)
        if status.blocked:
            raise TooManyAttempts(retry_after=status.retry_after)

    async def failed(self, *parts: str) -> BackoffStatus:
        """Counts a failure; the status says how long the next attempt must wait."""
        return await self.store.record_failure(self.key(*parts), self.policy)

    async def succeeded(self, *parts: str) -> None:
        await self.store.clear(self.key(*parts))
