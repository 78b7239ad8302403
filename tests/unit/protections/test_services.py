"""The rate limiter (composition, verdicts, one audit event per bucket per window) and backoff."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.routing import Route

from bastion.audit.events import AuditEvent, EventType, Outcome
from bastion.clock import FrozenClock
from bastion.protections.ratelimit.backoff import BackoffPolicy
from bastion.protections.ratelimit.errors import RateLimited, TooManyAttempts
from bastion.protections.ratelimit.interfaces import Ticker
from bastion.protections.ratelimit.memory import MemoryStore
from bastion.protections.ratelimit.policies import KeyKind, Policy
from bastion.protections.ratelimit.services import FailureBackoff, RateLimiter

LOGIN = Policy.per("login", 2, 60, paths=["/login"])
API = Policy.per("api-ip", 5, 60)
PER_USER = Policy.per("api-user", 3, 60, keys=[KeyKind.USER])


class Recorder:
    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def record(self, event: AuditEvent) -> None:
        self.events.append(event)

    async def start(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


def request(path: str = "/x", ip: str = "192.0.2.1", **state: Any) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "POST",
        "path": path,
        "client": (ip, 1234),
        "headers": [(b"user-agent", b"curl/8")],
        "state": {"request_id": "rid-1", **state},
    }


def limiter_for(
    ticker: Ticker, clock: FrozenClock, store: MemoryStore | None = None
) -> tuple[RateLimiter, Recorder, CollectorRegistry]:
    recorder, registry = Recorder(), CollectorRegistry()
    limiter = RateLimiter(
        store if store is not None else MemoryStore(ticker=ticker),
        [LOGIN, API, PER_USER],
        key_prefix="t:",
        audit=recorder,
        clock=clock,
        ticker=ticker,
        registry=registry,
    )
    return limiter, recorder, registry


async def run(limiter: RateLimiter, scope: dict[str, Any], n: int) -> str:
    out = ""
    for _ in range(n):
        applied = limiter.applicable(scope["method"], scope["path"])
        out += "A" if (await limiter.check(scope, applied)).allowed else "D"
    return out


async def test_a_request_must_pass_every_policy(ticker: Ticker, clock: FrozenClock) -> None:
    limiter, _, _ = limiter_for(ticker, clock)
    assert await run(limiter, request("/login"), 3) == "AAD"
    assert await run(limiter, request("/x"), 4) == "AAAD"  # 2 of 5 API units went to logins
    verdict = await limiter.check(request("/login"), limiter.applicable("POST", "/login"))
    assert verdict.reason == "rate_limited"
    assert [p.name for p in verdict.violated] == ["login", "api-ip"]


async def test_user_policy_applies_to_authenticated_requests_only(
    ticker: Ticker, clock: FrozenClock
) -> None:
    limiter, _, _ = limiter_for(ticker, clock)
    alice = request(user_id="alice")
    assert await run(limiter, alice, 4) == "AAAD"
    assert await run(limiter, request("/x", ip="192.0.2.2"), 2) == "AA"  # anonymous: IP only
    # The same user from another address is still the same user.
    assert await run(limiter, request("/x", ip="192.0.2.3", user_id="alice"), 1) == "D"


async def test_verdict_error_and_headers(ticker: Ticker, clock: FrozenClock) -> None:
    limiter, _, _ = limiter_for(ticker, clock)
    await run(limiter, request("/login"), 2)
    verdict = await limiter.check(request("/login"), limiter.applicable("POST", "/login"))
    error = verdict.error()
    assert isinstance(error, RateLimited)
    assert error.status == 429
    assert error.retry_after == 30
    # The refused request took nothing from api-ip: 3 of 5 units are left.
    assert error.headers == {
        "Retry-After": "30",
        "RateLimit-Policy": '"login";q=2;w=60, "api-ip";q=5;w=60',
        "RateLimit": '"login";r=0;t=30, "api-ip";r=3;t=24',
    }


async def test_no_applicable_policy_allows(ticker: Ticker, clock: FrozenClock) -> None:
    limiter = RateLimiter(MemoryStore(ticker=ticker), [PER_USER])
    verdict = await limiter.check(request(), limiter.applicable("GET", "/x"))
    assert verdict.allowed
    assert verdict.results == ()
    assert verdict.headers() == []


async def test_one_audit_event_per_bucket_per_window(ticker: Ticker, clock: FrozenClock) -> None:
    limiter, recorder, registry = limiter_for(ticker, clock)
    assert await run(limiter, request("/login"), 50) == "AA" + "D" * 48
    assert len(recorder.events) == 1
    event = recorder.events[0]
    assert event.type is EventType.RATELIMIT_LIMIT_EXCEEDED
    assert event.outcome is Outcome.FAILURE
    assert event.subject == "login"
    assert event.client_ip == "192.0.2.1"
    assert event.request_id == "rid-1"
    assert event.user_agent == "curl/8"
    assert event.reason == "rate_limited"
    assert event.time == clock.now()
    assert event.details["policy"] == "login"
    assert event.details["path"] == "/login"
    assert registry.get_sample_value("bastion_ratelimit_exceeded_total", {"policy": "login"}) == 48

    # Another client crossing the same limit is another bucket: its own event.
    await run(limiter, request("/login", ip="192.0.2.9"), 3)
    assert len(recorder.events) == 2
    # After the policy's window, a bucket still being refused is reported again.
    clock.advance(timedelta(seconds=60))
    await run(limiter, request("/login"), 3)
    assert len(recorder.events) == 3


async def test_workers_sharing_a_store_report_once(ticker: Ticker, clock: FrozenClock) -> None:
    shared = MemoryStore(ticker=ticker)
    first, recorder_a, _ = limiter_for(ticker, clock, shared)
    second, recorder_b, _ = limiter_for(ticker, clock, shared)
    await run(first, request("/login"), 3)
    await run(second, request("/login"), 3)
    assert len(recorder_a.events) + len(recorder_b.events) == 1


async def test_backoff_service(ticker: Ticker, clock: FrozenClock) -> None:
    backoff = FailureBackoff(
        MemoryStore(ticker=ticker), BackoffPolicy(name="pw", threshold=1), key_prefix="t:"
    )
    await backoff.check("alice", "192.0.2.1")
    assert (await backoff.failed("alice", "192.0.2.1")).retry_after == 0.0
    assert (await backoff.failed("alice", "192.0.2.1")).retry_after == 1.0
    with pytest.raises(TooManyAttempts) as caught:
        await backoff.check("alice", "192.0.2.1")
    assert caught.value.headers["Retry-After"] == "1"
    await backoff.check("alice", "192.0.2.2")  # keyed by account and IP
    clock.advance(timedelta(seconds=1))
    await backoff.check("alice", "192.0.2.1")
    await backoff.succeeded("alice", "192.0.2.1")
    assert (await backoff.failed("alice", "192.0.2.1")).retry_after == 0.0


def test_backoff_keys_are_bounded_and_unambiguous(ticker: Ticker) -> None:
    backoff = FailureBackoff(MemoryStore(ticker=ticker), BackoffPolicy(name="pw"))
    assert backoff.key("a" * 10_000).startswith("bastion:bo:pw:")
    assert len(backoff.key("a" * 10_000)) == len("bastion:bo:pw:") + 32
    assert backoff.key("ab", "c") != backoff.key("a", "bc")


async def test_audited_path_is_the_route_template(ticker: Ticker, clock: FrozenClock) -> None:
    """A token in the path (an email verification link) must not reach the audit log."""
    limiter, recorder, _ = limiter_for(ticker, clock)
    app = Starlette(routes=[Route("/verify/{token}", lambda _: None)])
    scope = {**request("/verify/secret-token"), "app": app}
    for _ in range(6):
        await limiter.check(scope, limiter.applicable("POST", "/verify/secret-token"))
    assert len(recorder.events) == 1
    assert recorder.events[0].details["path"] == "/verify/{token}"
    assert "secret-token" not in repr(recorder.events[0])


async def test_per_user_policies_are_left_for_the_authentication_layer(
    ticker: Ticker,
) -> None:
    user_login = Policy.per("login-user", 1, 60, keys=[KeyKind.USER, KeyKind.IP], paths=["/login"])
    limiter = RateLimiter(MemoryStore(ticker=ticker), [LOGIN, API, PER_USER, user_login])
    assert [p.name for p, _ in limiter.per_user("POST", "/x")] == ["api-user"]
    assert [p.name for p, _ in limiter.per_user("POST", "/login")] == ["login-user", "api-user"]
    # One stable tuple per path: the limiter's plan cache recognises it.
    assert limiter.per_user("POST", "/x") is limiter.per_user("POST", "/x")
    # Before authentication (no user) the middleware's check skips them ...
    anonymous = await limiter.check(request(), limiter.applicable("POST", "/x"))
    assert [p.name for p, _ in anonymous.results] == ["api-ip"]
    # ... and once the user is known they are counted, with the refusal's 429 shape.
    verdicts = [
        await limiter.check(request(user_id="u1"), limiter.per_user("POST", "/x")) for _ in range(4)
    ]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    error = verdicts[-1].error()
    assert isinstance(error, RateLimited)
    assert error.extra == {"violated-policies": ["api-user"]}
    assert error.headers["RateLimit-Policy"] == '"api-user";q=3;w=60'


async def test_decide_answers_at_once_only_when_the_memory_store_allows(
    ticker: Ticker, clock: FrozenClock
) -> None:
    # A single allowing memory-store decision is a Verdict (no coroutine); a refusal is an
    # awaitable, which counts the refusal and records the audit event as check() does.
    limiter, recorder, registry = limiter_for(ticker, clock)
    scope = request("/x", ip="192.0.2.9")
    applied = limiter.applicable("GET", "/x")
    answers = [limiter.decide(scope, applied) for _ in range(5)]
    assert all(type(answer).__name__ == "Verdict" and answer.allowed for answer in answers)  # type: ignore[union-attr]
    refused = limiter.decide(scope, applied)
    assert not isinstance(refused, tuple)
    verdict = await refused
    assert not verdict.allowed
    assert [event.subject for event in recorder.events] == ["api-ip"]
    assert registry.get_sample_value("bastion_ratelimit_exceeded_total", {"policy": "api-ip"}) == 1
