"""The revocation cache: local revocations at once, others within the bound, bounded memory."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import update
from tests.unit.identity.conftest import SessionStack

from bastion.identity.sessions.models import sessions
from bastion.identity.sessions.revocation import RevocationCache
from bastion.identity.tokens import AssuranceLevel, AuthMethod


async def _session(stack: SessionStack, email: str = "ann@example.org") -> str:
    user = await stack.user(email)
    issued = await stack.sessions.create(
        user.id,
        amr=[AuthMethod.PASSWORD],
        acr=AssuranceLevel.AAL1,
        transport="bearer",
        ip=None,
        user_agent=None,
    )
    return issued.session_id


async def _revoke_elsewhere(stack: SessionStack, session_id: str) -> None:
    async with stack.database.engine.begin() as connection:
        await connection.execute(
            update(sessions).where(sessions.c.id == session_id).values(revoked_at=stack.clock.now())
        )


async def test_revocations_elsewhere_are_seen_after_the_bound(stack: SessionStack) -> None:
    cache = RevocationCache(
        stack.database, stack.clock, bound_seconds=0.2, window=timedelta(minutes=6)
    )
    session_id = await _session(stack)
    assert not await cache.is_revoked(session_id)
    await _revoke_elsewhere(stack, session_id)
    assert not await cache.is_revoked(session_id)  # within the bound: not yet re-read
    await asyncio.sleep(0.25)
    assert await cache.is_revoked(session_id)


async def test_local_revocations_apply_at_once(stack: SessionStack) -> None:
    cache = RevocationCache(
        stack.database, stack.clock, bound_seconds=60, window=timedelta(minutes=6)
    )
    assert not await cache.is_revoked("s-1")
    cache.add(["s-1"])
    assert await cache.is_revoked("s-1")


async def test_old_revocations_leave_the_set(stack: SessionStack) -> None:
    cache = RevocationCache(
        stack.database, stack.clock, bound_seconds=0, window=timedelta(minutes=6)
    )
    session_id = await _session(stack)
    await _revoke_elsewhere(stack, session_id)
    assert await cache.is_revoked(session_id)
    stack.clock.advance(timedelta(minutes=7))  # every token of the session has expired
    assert not await cache.is_revoked(session_id)


class Monotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_the_set_is_refreshed_ahead_in_the_background_within_the_bound(
    stack: SessionStack,
) -> None:
    """Near the bound a request starts the refresh and is answered from the set (still within
    the bound); once the refresh is done the revocation is seen, before the bound is reached."""
    monotonic = Monotonic()
    cache = RevocationCache(
        stack.database,
        stack.clock,
        bound_seconds=5.0,
        window=timedelta(minutes=6),
        monotonic=monotonic,
    )
    session_id = await _session(stack)
    assert not await cache.is_revoked(session_id)
    await _revoke_elsewhere(stack, session_id)
    monotonic.now += 4.0  # 80% of the bound: refresh ahead
    assert not await cache.is_revoked(session_id)  # answered at once, from the set
    for _ in range(200):
        if await cache.is_revoked(session_id):
            break
        await asyncio.sleep(0.01)  # let the background refresh run
    else:
        raise AssertionError("the background refresh never saw the revocation")
    assert monotonic.now - 100.0 < 5.0  # seen before the bound, without a request waiting


async def test_at_the_bound_a_request_waits_for_the_refresh(stack: SessionStack) -> None:
    monotonic = Monotonic()
    cache = RevocationCache(
        stack.database,
        stack.clock,
        bound_seconds=5.0,
        window=timedelta(minutes=6),
        monotonic=monotonic,
    )
    session_id = await _session(stack)
    assert not await cache.is_revoked(session_id)
    await _revoke_elsewhere(stack, session_id)
    monotonic.now += 3.9  # below the refresh-ahead point: the set is used as it is
    assert not await cache.is_revoked(session_id)
    monotonic.now += 1.1  # at the bound: never answered from the old set
    assert await cache.is_revoked(session_id)
