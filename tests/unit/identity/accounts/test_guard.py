"""The credential guard: per-account backoff keyed by address (existing or not), per-IP
backoff, bounded lockout, audit events."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.unit.identity.conftest import ListRecorder

from bastion.audit.events import EventType
from bastion.clock import FrozenClock
from bastion.identity.accounts.guard import CredentialGuard
from bastion.protections.ratelimit.backoff import BackoffPolicy, BackoffStatus
from bastion.protections.ratelimit.errors import TooManyAttempts
from bastion.protections.ratelimit.interfaces import ticker_from_clock
from bastion.protections.ratelimit.memory import MemoryStore
from bastion.protections.ratelimit.services import KEY_CACHE_SIZE, FailureBackoff


def scope(ip: str) -> dict[str, object]:
    return {"type": "http", "state": {"client_ip": ip}, "headers": []}


@pytest.fixture
def guard(clock: FrozenClock, recorder: ListRecorder) -> CredentialGuard:
    return CredentialGuard(
        MemoryStore(ticker=ticker_from_clock(clock)),
        account_policy=BackoffPolicy(name="account", threshold=3, max_delay=900),
        ip_policy=BackoffPolicy(name="ip", threshold=10, max_delay=900),
        audit=recorder,
        clock=clock,
    )


async def _fail_until_locked(guard: CredentialGuard, email: str, user_id: str | None) -> int:
    for n in range(100):
        try:
            await guard.check(email, scope(f"198.51.100.{n}"))
        except TooManyAttempts as exc:
            return exc.retry_after
        await guard.failed(email, scope(f"198.51.100.{n}"), user_id=user_id, reason="wrong")
    raise AssertionError("never locked")


async def test_existing_and_unknown_addresses_lock_alike(guard: CredentialGuard) -> None:
    assert await _fail_until_locked(guard, "ann@example.org", "u1") == await _fail_until_locked(
        guard, "ghost@example.org", None
    )


async def test_the_lockout_is_bounded(guard: CredentialGuard, clock: FrozenClock) -> None:
    for _ in range(200):
        await guard.failed("ann@example.org", scope("192.0.2.1"), user_id="u1", reason="wrong")
    with pytest.raises(TooManyAttempts) as caught:
        await guard.check("ann@example.org", scope("192.0.2.2"))
    assert caught.value.retry_after <= 900
    clock.advance(timedelta(seconds=901))
    await guard.check("ann@example.org", scope("192.0.2.2"))


async def test_unlock_clears_and_is_audited(guard: CredentialGuard, recorder: ListRecorder) -> None:
    await _fail_until_locked(guard, "ann@example.org", "u1")
    assert recorder.of(EventType.IDENTITY_ACCOUNT_LOCKED)
    assert recorder.of(EventType.IDENTITY_LOGIN_THROTTLED)
    await guard.unlock(
        "ann@example.org", scope("192.0.2.9"), user_id="u1", actor="user:a", reason="admin"
    )
    await guard.check("ann@example.org", scope("192.0.2.9"))
    (event,) = recorder.of(EventType.IDENTITY_ACCOUNT_UNLOCKED)
    assert event.actor == "user:a"
    assert event.subject == "user:u1"


async def test_one_address_failing_across_accounts_is_throttled(guard: CredentialGuard) -> None:
    for n in range(11):
        await guard.failed(f"user{n}@example.org", scope("203.0.113.5"), user_id=None, reason="x")
    with pytest.raises(TooManyAttempts):
        await guard.check("fresh@example.org", scope("203.0.113.5"))
    await guard.check("fresh@example.org", scope("203.0.113.6"))


async def test_events_reference_addresses_without_storing_them(
    guard: CredentialGuard, recorder: ListRecorder
) -> None:
    await guard.failed("ghost@example.org", scope("192.0.2.1"), user_id=None, reason="unknown")
    (event,) = recorder.of(EventType.IDENTITY_LOGIN_FAILED)
    assert "ghost" not in str(event.details)
    assert event.details["email_ref"]
    assert event.client_ip == "192.0.2.1"


class _Delegating:
    """The same in-process store behind another type: the guard's general path (one awaited
    ``status`` per key, as with Redis or the failover store)."""

    def __init__(self, store: MemoryStore) -> None:
        self.inner = store

    async def record_failure(self, key: str, policy: BackoffPolicy) -> BackoffStatus:
        return await self.inner.record_failure(key, policy)

    async def status(self, key: str, policy: BackoffPolicy) -> BackoffStatus:
        return await self.inner.status(key, policy)

    async def clear(self, key: str) -> None:
        await self.inner.clear(key)


async def _outcome(guard: CredentialGuard, email: str, ip: str) -> float | None:
    try:
        await guard.check(email, scope(ip))
    except TooManyAttempts as exc:
        return exc.retry_after
    return None


async def test_the_in_process_check_answers_like_the_two_awaited_checks(
    clock: FrozenClock,
) -> None:
    """Both waits read in one call (in-process store) and the two awaited checks: the same
    answers, Retry-After and audit events through account and IP lockouts, decay and unlock."""
    guards, recorders = [], []
    for wrap in (False, True):
        recorder = ListRecorder()
        store = MemoryStore(ticker=ticker_from_clock(clock))
        guards.append(
            CredentialGuard(
                _Delegating(store) if wrap else store,
                account_policy=BackoffPolicy(name="account", threshold=3, max_delay=900),
                ip_policy=BackoffPolicy(name="ip", threshold=5, max_delay=900),
                audit=recorder,
                clock=clock,
            )
        )
        recorders.append(recorder)
    fast, general = guards
    steps = [("ann@example.org", "192.0.2.1")] * 6 + [("bob@example.org", "192.0.2.1")] * 3
    steps += [("ann@example.org", "192.0.2.2"), ("carl@example.org", "192.0.2.3")]
    seen = set()
    for email, ip in steps:
        for _ in range(2):
            answers = [await _outcome(g, email, ip) for g in guards]
            assert answers[0] == answers[1], (email, ip)
            seen.add(answers[0] is None)
            for g in guards:
                await g.failed(email, scope(ip), user_id=None, reason="wrong")
        clock.advance(timedelta(seconds=1))
    assert seen == {True, False}  # both allowed and refused answers were compared
    for g in guards:  # a success clears the account's wait, not the IP's
        await g.succeeded("bob@example.org")
    answers = [await _outcome(g, "bob@example.org", "192.0.2.7") for g in guards]
    assert answers == [None, None]
    answers = [await _outcome(g, "bob@example.org", "192.0.2.1") for g in guards]
    assert answers[0] == answers[1]
    assert answers[0] is not None
    clock.advance(timedelta(seconds=901))
    for g in guards:
        await g.unlock("ann@example.org", scope("192.0.2.9"), user_id="u1", actor=None, reason="r")
    answers = [await _outcome(g, "ann@example.org", "192.0.2.9") for g in guards]
    assert answers == [None, None]

    def kinds(recorder: ListRecorder) -> list[tuple[object, ...]]:
        return [(e.type, e.outcome, e.reason, e.details) for e in recorder.events]

    assert kinds(recorders[0]) == kinds(recorders[1])
    assert type(fast.ip.store) is MemoryStore
    assert type(general.ip.store) is _Delegating


def test_remembered_backoff_keys_are_the_computed_ones() -> None:
    """The key memo answers what hashing the parts gives, tells parts apart by their lengths,
    skips long parts and stays bounded."""
    backoff = FailureBackoff(MemoryStore(), BackoffPolicy(name="account", threshold=3))
    fresh = FailureBackoff(MemoryStore(), BackoffPolicy(name="account", threshold=3))
    parts = [("ann@example.org",), ("a", "b:c"), ("a:b", "c"), ("x" * 300,), ("",)]
    for p in parts * 2:
        assert backoff.key(*p) == fresh.key(*p)
        fresh._keys.clear()  # compare with a key hashed anew every time
    assert backoff.key("a", "b:c") != backoff.key("a:b", "c")
    assert ("x" * 300,) not in backoff._keys
    for n in range(KEY_CACHE_SIZE + 5):
        backoff.key(f"user{n}@example.org")
    assert len(backoff._keys) <= KEY_CACHE_SIZE
