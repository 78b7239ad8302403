"""The authenticator's fast paths answer exactly as its general paths.

Fast paths: the per-user budget taken through :meth:`RateLimiter.admit` (no verdict), the
revocation set read through :meth:`RevocationCache.revoked_now` (no coroutine), the bearer
header read from the raw ASGI headers. Two authenticators over the same database and keys run
the same requests side by side: one as built, one with the fast paths turned off (``admit`` and
``revoked_now`` always answering "decide it the general way"). Each request's outcome (the
principal or the error with its status, code and headers), the response headers and the audit
events must be the same, for valid tokens and for every attack case: no or malformed
credentials, a tampered token, a wrong audience, an expired token, a session revoked elsewhere
(before and at the revocation bound) and a per-user rate limit crossed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from fastapi import Response
from sqlalchemy import update
from starlette.requests import Request
from tests.unit.identity.conftest import ListRecorder, SessionStack

from bastion.clock import SystemClock
from bastion.identity.sessions.auth import Authenticator, Principal, VerifiedTokens
from bastion.identity.sessions.models import sessions
from bastion.identity.sessions.revocation import RevocationCache
from bastion.identity.sessions.transport import ACCESS_COOKIE, CsrfProtection
from bastion.identity.tokens import AssuranceLevel, AuthMethod
from bastion.protections.ratelimit.memory import MemoryStore
from bastion.protections.ratelimit.policies import KeyKind, Policy
from bastion.protections.ratelimit.services import RateLimiter

BOUND = 5.0
USER_LIMIT = 4
#: What an error carries to its answer (problem status, code, headers, retry-after...).
ERROR_FIELDS = ("status", "code", "headers", "reason", "retry_after", "violated", "detail")


@dataclass
class Ticks:
    """A monotonic clock for the revocation bound and the rate limits, moved by hand."""

    seconds: float = 100.0

    def monotonic(self) -> float:
        return self.seconds

    def monotonic_ns(self) -> int:
        return int(self.seconds * 1_000_000_000)


@dataclass
class Side:
    authenticator: Authenticator
    recorder: ListRecorder
    revocations: RevocationCache
    outcomes: list[Any] = field(default_factory=list)


def _side(stack: SessionStack, ticks: Ticks, *, fast: bool) -> Side:
    recorder = ListRecorder()
    policies = [
        Policy.per("api-ip", 1000, 60, keys=(KeyKind.IP,)),
        Policy.per("api-user", USER_LIMIT, 60, keys=(KeyKind.USER,)),
    ]
    limiter = RateLimiter(
        MemoryStore(ticker=ticks.monotonic_ns),
        policies,
        audit=recorder,
        clock=stack.clock,
        ticker=ticks.monotonic_ns,
    )
    revocations = RevocationCache(
        stack.database,
        stack.clock,
        bound_seconds=BOUND,
        window=stack.tokens.settings.verification_grace,
        monotonic=ticks.monotonic,
    )
    if not fast:

        def never_admit(*_: object) -> None:
            return None

        def never_now(_: str) -> None:
            return None

        limiter.admit = never_admit  # type: ignore[method-assign,assignment]
        revocations.revoked_now = never_now  # type: ignore[method-assign,assignment]
    authenticator = Authenticator(
        stack.tokens,
        revocations,
        CsrfProtection(b"k" * 32, trusted_origins=[]),
        audit=recorder,
        clock=stack.clock,
        limiter=limiter,
    )
    return Side(authenticator, recorder, revocations)


def _request(headers: list[tuple[bytes, bytes]]) -> Request:
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/v1/account",
        "raw_path": b"/v1/account",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("203.0.113.7", 4000),
        "state": {"client_ip": "203.0.113.7", "request_id": "r1"},
    }
    return Request(scope)


async def _outcome(side: Side, headers: list[tuple[bytes, bytes]]) -> Any:
    response = Response()
    del response.headers["content-length"]  # as FastAPI's sub-response
    try:
        who = await side.authenticator.authenticate(_request(headers), response)
    except Exception as exc:  # noqa: BLE001 - every refusal is compared, whatever its type
        answer: Any = (
            "error",
            type(exc).__name__,
            str(exc),
            *(getattr(exc, name, None) for name in ERROR_FIELDS),
        )
    else:
        answer = ("ok", who.user_id, who.session_id, who.transport, who.claims)
    events = list(side.recorder.events)
    side.recorder.events.clear()
    return answer, response.raw_headers, events


def _bearer(token: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Bearer {token}".encode())]


async def _token(stack: SessionStack, email: str) -> tuple[str, str]:
    user = await stack.user(email)
    issued = await stack.sessions.create(
        user.id,
        amr=[AuthMethod.PASSWORD],
        acr=AssuranceLevel.AAL1,
        transport="bearer",
        ip=None,
        user_agent=None,
    )
    return issued.access_token, issued.session_id


async def _revoke_elsewhere(stack: SessionStack, session_id: str) -> None:
    async with stack.database.engine.begin() as connection:
        await connection.execute(
            update(sessions).where(sessions.c.id == session_id).values(revoked_at=stack.clock.now())
        )


class Pair:
    def __init__(self, stack: SessionStack) -> None:
        self.ticks = Ticks()
        self.fast = _side(stack, self.ticks, fast=True)
        self.general = _side(stack, self.ticks, fast=False)

    async def same(self, headers: list[tuple[bytes, bytes]]) -> Any:
        fast = await _outcome(self.fast, headers)
        general = await _outcome(self.general, headers)
        assert fast == general
        return fast


async def test_valid_tokens_and_the_user_budget_crossed_answer_the_same(
    stack: SessionStack,
) -> None:
    pair = Pair(stack)
    token, _ = await _token(stack, "ann@example.org")
    for n in range(USER_LIMIT):
        answer, headers, events = await pair.same(_bearer(token))
        assert answer[0] == "ok"
        assert events == []
        names = [name for name, _ in headers]
        assert names == [b"ratelimit-policy", b"ratelimit"]
        assert headers[1][1] == b'"api-user";r=%d;t=%d' % (USER_LIMIT - 1 - n, 15 * (n + 1))
    # The budget is spent: the same 429, its headers and one audit event, on both.
    answer, headers, events = await pair.same(_bearer(token))
    assert answer[:2] == ("error", "RateLimited")
    assert answer[3] == 429
    assert set(answer[5]) == {"Retry-After", "RateLimit-Policy", "RateLimit"}
    assert headers == []
    assert len(events) == 1
    answer, _, events = await pair.same(_bearer(token))
    assert answer[3] == 429
    assert events == []  # reported once per window


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [(b"authorization", b"Basic eDp5")],
        [(b"authorization", b"Bearer ")],
        [(b"authorization", b"Bearer a.b.c")],
        [(b"authorization", b"bearer not-a-token")],
        [(b"Authorization", b"Bearer a.b.c")],  # not an ASGI (lower-case) name: not read
    ],
)
async def test_missing_and_malformed_credentials_answer_the_same(
    stack: SessionStack, headers: list[tuple[bytes, bytes]]
) -> None:
    pair = Pair(stack)
    answer, response_headers, _ = await pair.same(headers)
    assert answer[0] == "error"
    assert response_headers == []


async def test_the_first_authorization_header_is_the_one_read_on_both(
    stack: SessionStack,
) -> None:
    pair = Pair(stack)
    token, _ = await _token(stack, "ann@example.org")
    answer, _, _ = await pair.same([*_bearer(token), (b"authorization", b"Bearer a.b.c")])
    assert answer[0] == "ok"
    answer, _, _ = await pair.same([(b"authorization", b"Bearer a.b.c"), *_bearer(token)])
    assert answer[0] == "error"


async def test_tampered_and_foreign_audience_tokens_answer_the_same(stack: SessionStack) -> None:
    pair = Pair(stack)
    token, session_id = await _token(stack, "ann@example.org")
    assert (await pair.same(_bearer(token)))[0][0] == "ok"  # both remember the valid token
    head, payload, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    answer, _, events = await pair.same(_bearer(f"{head}.{payload}.{flipped}"))
    assert answer[0] == "error"
    assert len(events) == 1
    foreign = await stack.tokens.issue(
        subject="someone",
        session_id=session_id,
        amr=[AuthMethod.PASSWORD],
        acr=AssuranceLevel.AAL1,
        audience="another-service",
    )
    answer, _, events = await pair.same(_bearer(foreign))
    assert answer[0] == "error"
    assert len(events) == 1


async def test_expired_tokens_answer_the_same_even_when_remembered(stack: SessionStack) -> None:
    pair = Pair(stack)
    token, _ = await _token(stack, "ann@example.org")
    assert (await pair.same(_bearer(token)))[0][0] == "ok"
    settings = stack.tokens.settings
    lifetime = timedelta(seconds=settings.ttl_seconds + settings.leeway_seconds)
    stack.clock.advance(lifetime - timedelta(seconds=1))
    pair.ticks.seconds += 1  # within the revocation bound: the set is not re-read
    assert (await pair.same(_bearer(token)))[0][0] == "ok"
    stack.clock.advance(timedelta(seconds=1))
    answer, _, events = await pair.same(_bearer(token))
    assert answer[0] == "error"
    assert len(events) == 1


async def test_revocation_elsewhere_answers_the_same_within_and_at_the_bound(
    stack: SessionStack,
) -> None:
    pair = Pair(stack)
    token, session_id = await _token(stack, "ann@example.org")
    assert (await pair.same(_bearer(token)))[0][0] == "ok"
    await _revoke_elsewhere(stack, session_id)
    pair.ticks.seconds += BOUND * 0.5  # below the refresh-ahead point: the set as it is
    assert (await pair.same(_bearer(token)))[0][0] == "ok"
    pair.ticks.seconds += BOUND * 0.5  # at the bound: never answered from the old set
    answer, _, events = await pair.same(_bearer(token))
    assert answer[0] == "error"
    assert len(events) == 1


async def test_the_refresh_ahead_starts_from_the_fast_path_too(stack: SessionStack) -> None:
    pair = Pair(stack)
    token, session_id = await _token(stack, "ann@example.org")
    assert (await pair.same(_bearer(token)))[0][0] == "ok"
    await _revoke_elsewhere(stack, session_id)
    pair.ticks.seconds += BOUND * 0.9  # past the refresh-ahead point, before the bound
    assert (await pair.same(_bearer(token)))[0][0] == "ok"  # answered from the set
    # Each side's background refresh finishes on its own time: each is awaited apart (not
    # polled with requests: on a loaded machine the polls crossed the per-user rate limit).
    finals = []
    for side in (pair.fast, pair.general):
        ahead = side.revocations._ahead  # None: it already finished
        if ahead is not None:
            await asyncio.wait_for(asyncio.shield(ahead), 30)
        finals.append(await _outcome(side, _bearer(token)))
    assert finals[0][0][0] == "error", finals[0]  # the set refreshed ahead saw the revocation
    assert pair.ticks.seconds - 100.0 < BOUND  # seen before the bound
    assert finals[0] == finals[1]


async def test_revoked_now_declines_until_the_set_is_loaded_and_at_the_bound(
    stack: SessionStack,
) -> None:
    ticks = Ticks()
    cache = RevocationCache(
        stack.database,
        stack.clock,
        bound_seconds=BOUND,
        window=timedelta(minutes=6),
        monotonic=ticks.monotonic,
    )
    assert cache.revoked_now("s") is None  # never loaded: the caller awaits is_revoked
    assert not await cache.is_revoked("s")
    assert cache.revoked_now("s") is False
    cache.add(["s"])  # a local revocation: at once, on both paths
    assert cache.revoked_now("s") is True
    assert await cache.is_revoked("s")
    assert cache.revoked_now("t") is False
    ticks.seconds += BOUND
    assert cache.revoked_now("s") is None


def test_the_system_clock_reads_the_wall_clock_as_its_datetime_does() -> None:
    clock = SystemClock()
    cache = VerifiedTokens(clock, leeway_seconds=0, reverify_seconds=60.0)
    before = clock.now().timestamp()
    read = cache._timestamp()
    after = clock.now().timestamp()
    assert before - 1e-6 <= read <= after + 1e-6


async def test_a_remembered_principal_is_the_one_built_for_its_claims_and_transport(
    stack: SessionStack,
) -> None:
    """The principal is reused only for the very same claims and transport: the same token
    in the cookie is the cookie transport, another token another principal."""
    pair = Pair(stack)
    token, session_id = await _token(stack, "ann@example.org")
    other, _ = await _token(stack, "bob@example.org")
    cookie = [(b"cookie", f"{ACCESS_COOKIE}={token}".encode())]
    answers = []
    for headers in (_bearer(token), cookie, _bearer(other), _bearer(token)):
        answer, _, _ = await pair.same(headers)
        assert answer[0] == "ok"
        answers.append(answer)
    assert [a[3] for a in answers] == ["bearer", "cookie", "bearer", "bearer"]
    assert answers[0] == answers[3]
    assert answers[2][1] != answers[0][1]
    pair.ticks.seconds += 60  # ann's per-user budget (four requests) refills
    request = _request(_bearer(token))
    who = await pair.fast.authenticator.authenticate(request, None)
    assert who == Principal(who.claims.subject, session_id, "bearer", who.claims)
    assert who.user_id == answers[0][1]
