"""Sessions: rotation, reuse detection, the retry grace, lifetimes, revocation (SQLite and
PostgreSQL)."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from tests.unit.identity.conftest import SessionStack

from bastion.audit.events import EventType
from bastion.crypto import hash_token
from bastion.identity.accounts.models import users
from bastion.identity.errors import InvalidCredentials
from bastion.identity.sessions import models as session_models
from bastion.identity.sessions import services as session_services
from bastion.identity.sessions.models import refresh_tokens
from bastion.identity.sessions.services import IssuedTokens, RevokeReason
from bastion.identity.tokens import AssuranceLevel, AuthMethod, InvalidToken, InvalidTokenReason
from bastion.privacy.erasure import erase_rows


async def _login(stack: SessionStack) -> IssuedTokens:
    user = await stack.user()
    return await stack.sessions.create(
        user.id,
        amr=[AuthMethod.PASSWORD],
        acr=AssuranceLevel.AAL1,
        transport="bearer",
        ip="192.0.2.1",
        user_agent="x" * 2000,
    )


async def _reason(stack: SessionStack, token: str) -> InvalidTokenReason:
    with pytest.raises(InvalidToken) as caught:
        await stack.sessions.refresh(token)
    return caught.value.reason


async def test_refresh_tokens_are_stored_hashed(stack: SessionStack) -> None:
    issued = await _login(stack)
    async with stack.database.engine.connect() as connection:
        stored = (await connection.execute(select(refresh_tokens.c.token_hash))).scalars().all()
    assert issued.refresh_token not in stored
    assert len(stored[0]) == 64
    claims = await stack.tokens.verify(issued.access_token)
    assert claims.session_id == issued.session_id


async def test_rotation_then_reuse_revokes_the_session(stack: SessionStack) -> None:
    issued = await _login(stack)
    second = await stack.sessions.refresh(issued.refresh_token)
    third = await stack.sessions.refresh(second.refresh_token)
    assert len({issued.refresh_token, second.refresh_token, third.refresh_token}) == 3
    stack.clock.advance(timedelta(seconds=11))
    assert await _reason(stack, issued.refresh_token) is InvalidTokenReason.REUSED
    assert await _reason(stack, third.refresh_token) is InvalidTokenReason.SESSION_REVOKED
    assert await stack.revocations.is_revoked(issued.session_id)
    (event,) = stack.recorder.of(EventType.TOKEN_REFRESH_REUSE_DETECTED)
    assert event.details["session_id"] == issued.session_id
    assert event.subject is not None


async def test_retry_within_grace_gets_the_same_successor_once(stack: SessionStack) -> None:
    issued = await _login(stack)
    first = await stack.sessions.refresh(issued.refresh_token)
    stack.clock.advance(timedelta(seconds=5))
    retry = await stack.sessions.refresh(issued.refresh_token)
    assert retry.refresh_token == first.refresh_token
    # Once the successor is used, the grace of its parent is over: a replay is reuse.
    await stack.sessions.refresh(first.refresh_token)
    assert await _reason(stack, issued.refresh_token) is InvalidTokenReason.REUSED


async def test_successor_within_grace_is_sealed_not_stored_in_clear(stack: SessionStack) -> None:
    issued = await _login(stack)
    successor = await stack.sessions.refresh(issued.refresh_token)
    async with stack.database.engine.connect() as connection:
        sealed = (await connection.execute(select(refresh_tokens.c.successor_sealed))).scalars()
        values = [v for v in sealed if v]
    assert values
    assert all(successor.refresh_token not in v for v in values)


async def _sealed_of(stack: SessionStack, token: str) -> str | None:
    c = refresh_tokens.c
    query = select(c.successor_sealed).where(c.token_hash == hash_token(token))
    async with stack.database.engine.connect() as connection:
        return (await connection.execute(query)).scalar_one()


async def test_a_used_successor_ends_its_parents_grace(stack: SessionStack) -> None:
    issued = await _login(stack)
    assert await _sealed_of(stack, issued.refresh_token) is None  # a login's: no parent
    first = await stack.sessions.refresh(issued.refresh_token)
    # The retry grace of ``issued``: its successor kept sealed in the successor's own row.
    assert await _sealed_of(stack, first.refresh_token) is not None
    assert await _sealed_of(stack, issued.refresh_token) is None
    second = await stack.sessions.refresh(first.refresh_token)
    # The sealed copy of a used token is erased by the rotation that uses it...
    assert await _sealed_of(stack, first.refresh_token) is None
    assert await _sealed_of(stack, second.refresh_token) is not None
    # ...and the token that was just used keeps its own grace for its successor.
    retry = await stack.sessions.refresh(first.refresh_token)
    assert retry.refresh_token == second.refresh_token


async def test_a_rotation_writes_the_used_token_and_its_successor_only(
    stack: SessionStack,
) -> None:
    """No third row: the parent of the token used is left as it was."""
    issued = await _login(stack)
    first = await stack.sessions.refresh(issued.refresh_token)

    async def rows() -> dict[str, tuple[object, ...]]:
        async with stack.database.engine.connect() as connection:
            result = await connection.execute(select(refresh_tokens))
            return {row.token_hash: tuple(row) for row in result}

    before = await rows()
    stack.clock.advance(timedelta(seconds=1))
    second = await stack.sessions.refresh(first.refresh_token)
    after = await rows()
    changed = {h for h in before if before[h] != after[h]}
    assert changed == {hash_token(first.refresh_token)}
    assert set(after) - set(before) == {hash_token(second.refresh_token)}
    used = after[hash_token(first.refresh_token)]
    assert hash_token(second.refresh_token) in used  # it names its successor


async def test_a_retry_gets_no_successor_whose_sealed_copy_does_not_match(
    stack: SessionStack,
) -> None:
    """The retry grace hands out only the successor the used token names: a sealed copy moved
    from another row (it is bound to its parent's digest) or naming another token is reuse."""
    issued = await _login(stack)
    first = await stack.sessions.refresh(issued.refresh_token)
    other = await stack.sessions.refresh((await _start(stack, issued.user_id)).refresh_token)
    c = refresh_tokens.c
    async with stack.database.engine.begin() as connection:
        foreign = (
            await connection.execute(
                select(c.successor_sealed).where(c.token_hash == hash_token(other.refresh_token))
            )
        ).scalar_one()
        await connection.execute(
            update(refresh_tokens)
            .where(c.token_hash == hash_token(first.refresh_token))
            .values(successor_sealed=foreign)
        )
    assert await _reason(stack, issued.refresh_token) is InvalidTokenReason.REUSED


async def test_a_disabled_users_session_is_not_renewed(stack: SessionStack) -> None:
    issued = await _login(stack)
    async with stack.database.engine.begin() as connection:
        await connection.execute(
            update(users).where(users.c.id == issued.user_id).values(disabled=True)
        )
    assert await _reason(stack, issued.refresh_token) is InvalidTokenReason.SESSION_REVOKED
    async with stack.database.engine.begin() as connection:
        await connection.execute(
            update(users).where(users.c.id == issued.user_id).values(disabled=False)
        )
    # The refused rotation rolled back: the token was not consumed, so it is not reuse.
    renewed = await stack.sessions.refresh(issued.refresh_token)
    assert renewed.session_id == issued.session_id
    assert not stack.recorder.of(EventType.TOKEN_REFRESH_REUSE_DETECTED)


async def _start(stack: SessionStack, user_id: str) -> IssuedTokens:
    return await stack.sessions.create(
        user_id,
        amr=[AuthMethod.PASSWORD],
        acr=AssuranceLevel.AAL1,
        transport="bearer",
        ip=None,
        user_agent=None,
    )


async def _sessions_of(stack: SessionStack, user_id: str) -> list[str]:
    async with stack.database.engine.connect() as connection:
        query = select(session_models.sessions.c.id).where(
            session_models.sessions.c.user_id == user_id
        )
        return list((await connection.execute(query)).scalars())


async def test_no_session_starts_for_a_disabled_user(stack: SessionStack) -> None:
    user = await stack.user()
    async with stack.database.engine.begin() as connection:
        await connection.execute(update(users).where(users.c.id == user.id).values(disabled=True))
    with pytest.raises(InvalidCredentials):
        await _start(stack, user.id)
    assert await _sessions_of(stack, user.id) == []


@pytest.mark.parametrize("change", ["disable", "erase"])
async def test_a_login_racing_a_disable_or_erasure_gets_no_session(
    stack: SessionStack, change: str
) -> None:
    # The login checked the account before the change began, and writes its session while the
    # change is still uncommitted: it must wait, then see the account disabled (PostgreSQL: the
    # share lock on the user's row; SQLite: one writer at a time), never leave a live session.
    user = await stack.user()
    async with stack.database.engine.connect() as connection:
        await connection.begin()
        if change == "disable":
            await connection.execute(
                update(users).where(users.c.id == user.id).values(disabled=True)
            )
        else:
            await erase_rows(connection, user.id, user.email, stack.clock.now())
        login = asyncio.create_task(_start(stack, user.id))
        await asyncio.sleep(0.3)
        assert not login.done()  # waiting for the change to end
        await connection.commit()
    with pytest.raises(InvalidCredentials):
        await login
    assert await _sessions_of(stack, user.id) == []


async def test_concurrent_refreshes_never_fork_the_chain(stack: SessionStack) -> None:
    issued = await _login(stack)
    results = await asyncio.gather(
        *(stack.sessions.refresh(issued.refresh_token) for _ in range(5)), return_exceptions=True
    )
    tokens = {r.refresh_token for r in results if isinstance(r, IssuedTokens)}
    assert len(tokens) == 1, results


async def test_a_rotation_on_an_inline_sqlite_file_is_one_synchronous_unit(
    stack: SessionStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite the rotation runs as one call (``Database.try_unit``), not as a transaction
    through SQLAlchemy; on PostgreSQL through the transaction as before. Same answers."""
    issued = await _login(stack)
    units, transactions = _count_units(stack, monkeypatch)
    second = await stack.sessions.refresh(issued.refresh_token)
    third = await stack.sessions.refresh(second.refresh_token)
    claims = await stack.tokens.verify(third.access_token)
    assert claims.session_id == issued.session_id
    if stack.database.is_sqlite:
        assert len(units) == 2
        assert all(units)
        assert transactions == []
    else:
        assert units == [None, None]
        assert len(transactions) == 2
    # The unit's write is the usual one: single use, the successor sealed in its own row.
    assert await _sealed_of(stack, third.refresh_token) is not None
    assert await _sealed_of(stack, second.refresh_token) is None
    stack.clock.advance(timedelta(seconds=11))
    assert await _reason(stack, second.refresh_token) is InvalidTokenReason.REUSED
    assert await _reason(stack, third.refresh_token) is InvalidTokenReason.SESSION_REVOKED
    assert len(stack.recorder.of(EventType.TOKEN_REFRESH_REUSE_DETECTED)) == 1


async def test_a_rotation_waits_for_a_writer_holding_the_database(stack: SessionStack) -> None:
    """A writer of the process inside its transaction: the unit does not run (it would have to
    wait on the loop's thread); the rotation waits through the ordinary transaction."""
    issued = await _login(stack)
    user = await stack.user("bob@example.org")
    async with stack.database.engine.connect() as connection:
        await connection.execute(
            update(users).where(users.c.id == user.id).values(display_name="Bob")
        )
        rotation = asyncio.create_task(stack.sessions.refresh(issued.refresh_token))
        await asyncio.sleep(0.3)
        if stack.database.is_sqlite:
            assert not rotation.done()  # waiting for the writer to end
        await connection.commit()
    second = await rotation
    third = await stack.sessions.refresh(second.refresh_token)
    assert third.session_id == issued.session_id


async def test_a_rotation_meeting_a_wal_checkpoint_waits_then_runs_as_one_unit(
    stack: SessionStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A WAL checkpoint holding the write gate: the rotation waits for it, then runs as the
    unit, not through the ordinary transaction (the rotations arriving during a checkpoint
    took that slower path: about one in six at 32 concurrent chains)."""
    checkpointer = stack.database.checkpointer
    if checkpointer is None:
        pytest.skip("no WAL checkpointer: not an inline SQLite file")
    issued = await _login(stack)
    running, finish = threading.Event(), threading.Event()
    run = checkpointer._run

    def paused(*args: Any, **kwargs: Any) -> Any:
        if checkpointer.holding is not None:  # the pass that holds the gate
            running.set()
            finish.wait(10)
        return run(*args, **kwargs)

    monkeypatch.setattr(checkpointer, "_run", paused)
    checkpointer.units = 1
    checkpointer.restart_every = 1  # the checkpoint has its pass under the gate
    second = await stack.sessions.refresh(issued.refresh_token)  # the write that starts it
    assert await asyncio.to_thread(running.wait, 10)
    checkpointer.units = 10**9
    units, transactions = _count_units(stack, monkeypatch)
    rotation = asyncio.create_task(stack.sessions.refresh(second.refresh_token))
    await asyncio.sleep(0.1)
    assert not rotation.done()
    assert units == [None]  # the gate was held
    finish.set()
    third = await asyncio.wait_for(rotation, 10)
    assert units[1:]
    assert all(units[1:])
    assert transactions == []
    assert (await stack.tokens.verify(third.access_token)).session_id == issued.session_id
    # Single use as ever: the token used during the checkpoint is spent.
    stack.clock.advance(timedelta(seconds=11))
    assert await _reason(stack, second.refresh_token) is InvalidTokenReason.REUSED


async def _last_seen(stack: SessionStack, session_id: str) -> Any:
    c = session_models.sessions.c
    async with stack.database.engine.connect() as connection:
        query = select(c.last_seen_at).where(c.id == session_id)
        return (await connection.execute(query)).scalar_one()


async def test_a_rotation_records_the_sessions_activity_once_a_step(stack: SessionStack) -> None:
    """``last_seen_at`` is written when older than the step (a hundredth of the idle lifetime
    here, one hour: 36 s), not on every rotation; the idle lifetime then ends a session up to a
    step early, never late."""
    assert stack.sessions.seen_step == timedelta(seconds=36)
    issued = await _login(stack)
    logged_in = await _last_seen(stack, issued.session_id)
    stack.clock.advance(timedelta(seconds=20))
    second = await stack.sessions.refresh(issued.refresh_token)
    assert await _last_seen(stack, issued.session_id) == logged_in  # within the step
    stack.clock.advance(timedelta(seconds=20))  # 40 s after the recorded time
    third = await stack.sessions.refresh(second.refresh_token)
    assert await _last_seen(stack, issued.session_id) == stack.clock.now()
    stack.clock.advance(timedelta(seconds=30))
    fourth = await stack.sessions.refresh(third.refresh_token)  # not recorded
    # An hour after the recorded time (30 s short of an hour after the last refresh): ended.
    stack.clock.advance(timedelta(minutes=59, seconds=31))
    assert await _reason(stack, fourth.refresh_token) is InvalidTokenReason.SESSION_EXPIRED


async def test_the_step_is_at_most_a_minute(stack: SessionStack) -> None:
    service = session_services.SessionService(
        stack.database,
        stack.tokens,
        stack.sessions._cipher,
        stack.revocations,
        signing=stack.sessions.signing,
        audit=stack.recorder,
        clock=stack.clock,
        idle=timedelta(days=3),
        absolute=timedelta(days=30),
        refresh_grace=timedelta(seconds=10),
    )
    assert service.seen_step == timedelta(seconds=60)


async def test_unknown_and_malformed(stack: SessionStack) -> None:
    assert await _reason(stack, "nope") is InvalidTokenReason.MALFORMED
    assert await _reason(stack, "bst_ref_" + "A" * 43) is InvalidTokenReason.UNKNOWN_TOKEN


async def test_idle_and_absolute_lifetimes(stack: SessionStack) -> None:
    issued = await _login(stack)
    stack.clock.advance(timedelta(hours=1, seconds=1))
    assert await _reason(stack, issued.refresh_token) is InvalidTokenReason.SESSION_EXPIRED
    issued = await stack.sessions.create(
        (await stack.user("bob@example.org")).id,
        amr=[AuthMethod.PASSWORD],
        acr=AssuranceLevel.AAL1,
        transport="bearer",
        ip=None,
        user_agent=None,
    )
    token = issued.refresh_token
    for _ in range(24):
        stack.clock.advance(timedelta(minutes=59))
        token = (await stack.sessions.refresh(token)).refresh_token
    stack.clock.advance(timedelta(minutes=59))
    assert await _reason(stack, token) is InvalidTokenReason.SESSION_EXPIRED


async def test_revoke_is_scoped_to_the_owner(stack: SessionStack) -> None:
    issued = await _login(stack)
    other = await stack.user("eve@example.org")
    assert not await stack.sessions.revoke(
        issued.session_id, user_id=other.id, reason=RevokeReason.LOGOUT
    )
    assert await stack.sessions.is_live(issued.session_id)
    assert await stack.sessions.revoke(
        issued.session_id, user_id=issued.user_id, reason=RevokeReason.LOGOUT
    )
    assert not await stack.sessions.is_live(issued.session_id)
    assert await stack.revocations.is_revoked(issued.session_id)
    assert await stack.sessions.list_active(issued.user_id) == []


async def test_listed_sessions_are_bounded_text(stack: SessionStack) -> None:
    issued = await _login(stack)
    (info,) = await stack.sessions.list_active(issued.user_id)
    assert info.user_agent is not None
    assert len(info.user_agent) == 512
    assert info.amr == ("pwd",)


async def test_a_user_holds_a_bounded_number_of_sessions(
    stack: SessionStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session_services, "MAX_SESSIONS_PER_USER", 3)
    user = await stack.user()
    issued = []
    for _ in range(5):
        stack.clock.advance(timedelta(seconds=1))
        issued.append(
            await stack.sessions.create(
                user.id,
                amr=[AuthMethod.PASSWORD],
                acr=AssuranceLevel.AAL1,
                transport="bearer",
                ip=None,
                user_agent=None,
            )
        )
    live = {s.id for s in await stack.sessions.list_active(user.id)}
    assert live == {t.session_id for t in issued[-3:]}
    assert await stack.revocations.is_revoked(issued[0].session_id)


async def _eviction_plan(stack: SessionStack) -> list[str]:
    """SQLite's query plan of a login's eviction (``EXPLAIN QUERY PLAN``), one detail a step."""
    if stack.database.engine.dialect.name != "sqlite":
        pytest.skip("query plans are SQLite's; PostgreSQL chooses plans from table statistics")
    from bastion.identity.sessions import _statements  # noqa: PLC0415

    compiled = _statements.EVICT_BEYOND_LIMIT.compile(dialect=stack.database.engine.dialect)
    params = compiled.construct_params(
        {"uid": "u", "now": stack.clock.now(), "keep": 10, "reason": "limit"}
    )
    positional = tuple(params[name] for name in compiled.positiontup or ())
    processors = compiled._bind_processors  # the dialect's own conversions
    positional = tuple(
        processors[name](value) if name in processors else value
        for name, value in zip(compiled.positiontup or (), positional, strict=True)
    )
    async with stack.database.engine.connect() as connection:
        plan = (
            await connection.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled), positional)
        ).all()
    return [row[-1] for row in plan]


async def test_eviction_reads_only_live_sessions_through_the_partial_index(
    stack: SessionStack,
) -> None:
    """A login's eviction beyond the per-user limit must not visit the user's ended sessions:
    on SQLite its plan searches ``ix_sessions_user_live`` (live rows only, already in the
    newest-first order) with no temporary sort. Without that index the plan is a search of
    ``ix_sessions_user_id`` over every session the user ever had, then a sort, and each login
    costs more as the user's history grows."""
    details = await _eviction_plan(stack)
    assert any("ix_sessions_user_live" in detail for detail in details), details
    assert not any("TEMP B-TREE" in detail for detail in details), details
    # The rows to revoke are found by primary key from that list, never by searching
    # ix_sessions_revoked_at (every live session of every user, on every login).
    assert not any("ix_sessions_revoked_at" in detail for detail in details), details
    assert any(
        detail.startswith("SEARCH sessions USING INDEX sqlite_autoindex_sessions_1 (id=?)")
        for detail in details
    ), details


async def test_eviction_finds_the_live_sessions_from_the_index_alone(
    stack: SessionStack,
) -> None:
    """The eviction's list of the user's live sessions is answered from
    ``ix_sessions_user_live`` alone (migration 0013: it holds ``absolute_expires_at`` and
    ``revoked_at`` too): without them SQLite reads the table row of each of the user's live
    sessions (up to the limit) on every login, to test whether it has expired."""
    details = await _eviction_plan(stack)
    assert any(
        detail.startswith("SEARCH live USING COVERING INDEX ix_sessions_user_live (user_id=?)")
        for detail in details
    ), details


@pytest.mark.parametrize("parent_hash", ["", "a" * 64, "é|x", "0" * 1000])
def test_the_successor_binding_is_binds(parent_hash: str) -> None:
    from bastion.crypto import bind  # noqa: PLC0415
    from bastion.identity.sessions.services import _successor_binding  # noqa: PLC0415

    assert _successor_binding(parent_hash) == bind("refresh_tokens", "successor", parent_hash)


async def test_a_rotation_and_its_retry_grace_read_every_row_through_an_index(
    stack: SessionStack,
) -> None:
    """The rotation's statements and the grace's lookups (the used token, then the successor
    it names) find their rows by index: no scan of ``refresh_tokens`` or ``sessions``."""
    if stack.database.engine.dialect.name != "sqlite":
        pytest.skip("query plans are SQLite's; PostgreSQL chooses plans from table statistics")
    from bastion.identity.sessions import _statements  # noqa: PLC0415

    c = refresh_tokens.c
    now = stack.clock.now()
    values = {"hash": "h", "new_hash": "n", "sid": "s", "now": now, "idle_since": now}
    values |= {"sealed": "x", "stale": now}
    statements = [
        _statements.CONSUME,
        _statements.RENEW,
        _statements.RENEWABLE,
        _statements.TOUCH,
        _statements.ADD_TOKEN,
        select(c.session_id, c.used_at, c.successor_hash).where(c.token_hash == "h"),
        select(c.used_at, c.successor_sealed).where(c.token_hash == "n"),
    ]
    dialect = stack.database.engine.dialect
    for statement in statements:
        compiled = statement.compile(dialect=dialect)
        params = compiled.construct_params(values)
        processors = compiled._bind_processors  # the dialect's own conversions
        positional = tuple(
            processors[name](params[name]) if name in processors else params[name]
            for name in compiled.positiontup or ()
        )
        async with stack.database.engine.connect() as connection:
            plan = (
                await connection.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled), positional)
            ).all()
        details = [row[-1] for row in plan]
        assert not any(d.startswith("SCAN") for d in details), (str(compiled), details)


def _count_units(
    stack: SessionStack, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[Any], list[Any]]:
    """``Database.try_unit``'s outcomes and ``Database.transaction``'s calls, from now on
    (after a read, which makes the kept connection that a unit runs on)."""
    units: list[Any] = []
    transactions: list[Any] = []
    try_unit, transaction = stack.database.try_unit, stack.database.transaction

    def counting_unit(work: Any) -> Any:
        units.append(outcome := try_unit(work))
        return outcome

    async def counting_transaction(work: Any) -> Any:
        transactions.append(work)
        return await transaction(work)

    monkeypatch.setattr(stack.database, "try_unit", counting_unit)
    monkeypatch.setattr(stack.database, "transaction", counting_transaction)
    return units, transactions


async def _create(stack: SessionStack, user_id: str, **options: Any) -> IssuedTokens:
    return await stack.sessions.create(
        user_id,
        amr=[AuthMethod.PASSWORD],
        acr=AssuranceLevel.AAL1,
        transport="bearer",
        ip="192.0.2.1",
        user_agent="agent",
        **options,
    )


async def test_a_login_on_an_inline_sqlite_file_is_one_synchronous_unit(
    stack: SessionStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite a login's session, first token and eviction run as one call
    (``Database.try_unit``), not as a transaction through SQLAlchemy; on PostgreSQL through the
    transaction as before. Same rows, same eviction, same answers."""
    monkeypatch.setattr(session_services, "MAX_SESSIONS_PER_USER", 2)
    user = await stack.user()
    await stack.database.read(lambda _: None)
    units, transactions = _count_units(stack, monkeypatch)
    issued = []
    for _ in range(3):
        stack.clock.advance(timedelta(seconds=1))
        issued.append(await _create(stack, user.id))
    if stack.database.is_sqlite:
        assert units == [[], [], [issued[0].session_id]]
        assert transactions == []
    else:
        assert units == [None, None, None]
        assert len(transactions) == 3
    live = {s.id for s in await stack.sessions.list_active(user.id)}
    assert live == {t.session_id for t in issued[1:]}
    assert await stack.revocations.is_revoked(issued[0].session_id)
    (info,) = [s for s in await stack.sessions.list_active(user.id) if s.id == issued[2].session_id]
    assert (info.ip, info.user_agent, info.amr, info.acr, info.transport) == (
        "192.0.2.1",
        "agent",
        ("pwd",),
        "aal1",
        "bearer",
    )
    # The first refresh token was stored: it rotates.
    second = await stack.sessions.refresh(issued[2].refresh_token)
    assert second.session_id == issued[2].session_id


async def test_a_login_refused_by_its_statement_falls_back_to_the_transaction(
    stack: SessionStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No session inserted (a disabled account here): the unit writes nothing and the ordinary
    transaction answers, with ``refused`` asked there; nothing is written."""
    user = await stack.user()
    async with stack.database.engine.begin() as connection:
        await connection.execute(update(users).where(users.c.id == user.id).values(disabled=True))
    await stack.database.read(lambda _: None)
    units, transactions = _count_units(stack, monkeypatch)
    asked: list[str] = []

    def refused(connection: Any) -> None:
        asked.append("refused")

    with pytest.raises(InvalidCredentials):
        await _create(stack, user.id, refused=refused)
    assert units == [None]
    assert len(transactions) == 1
    assert asked == ["refused"]
    assert await _sessions_of(stack, user.id) == []
    async with stack.database.engine.connect() as connection:
        tokens = (await connection.execute(select(refresh_tokens.c.token_hash))).all()
    assert tokens == []


async def test_a_login_with_a_precondition_takes_the_transaction(
    stack: SessionStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A precondition asks on a SQLAlchemy connection: no unit; what it raises rolls back."""
    user = await stack.user()
    await stack.database.read(lambda _: None)
    units, transactions = _count_units(stack, monkeypatch)

    class Refused(Exception):
        pass

    def precondition(connection: Any) -> None:
        raise Refused

    with pytest.raises(Refused):
        await _create(stack, user.id, precondition=precondition)
    assert units == []
    assert len(transactions) == 1
    assert await _sessions_of(stack, user.id) == []
    issued = await _create(stack, user.id, precondition=lambda _: None)
    assert units == []
    assert await stack.sessions.is_live(issued.session_id)


async def test_a_login_waits_for_a_writer_holding_the_database(stack: SessionStack) -> None:
    """A writer of the process inside its transaction: the unit does not run (it would have to
    wait on the loop's thread); the login waits through the ordinary transaction."""
    user = await stack.user()
    other = await stack.user("bob@example.org")
    async with stack.database.engine.connect() as connection:
        await connection.execute(
            update(users).where(users.c.id == other.id).values(display_name="Bob")
        )
        login = asyncio.create_task(_create(stack, user.id))
        await asyncio.sleep(0.3)
        if stack.database.is_sqlite:
            assert not login.done()  # waiting for the writer to end
        await connection.commit()
    issued = await login
    assert await stack.sessions.is_live(issued.session_id)
