"""Factor storage on SQLite and PostgreSQL: TOTP replay and races decided by the database,
recovery codes single use, session authentication marks, login challenges single use."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from tests.unit.identity.conftest import SessionStack

from bastion.crypto import EnvelopeCipher
from bastion.identity.mfa import challenges, factors, totp
from bastion.identity.mfa.factors import Reason, TotpState
from bastion.identity.mfa.session_auth import mark_authenticated, read_session_auth
from bastion.identity.tokens.claims import AssuranceLevel, AuthMethod


async def _active_totp(stack: SessionStack, cipher: EnvelopeCipher, user_id: str) -> str:
    secret = totp.new_secret()
    now = stack.clock.now()
    async with stack.database.engine.begin() as connection:
        sealed = factors.seal_secret(cipher, user_id, secret)
        await factors.put_pending_totp(connection, user_id, sealed, now)
        step = totp.time_step(now) - 1
        verdict = await factors.activate_totp(
            connection, cipher, user_id, totp.code_at(secret, step), now
        )
    assert verdict.ok
    return secret


async def test_totp_steps_only_move_forward(stack: SessionStack, cipher: EnvelopeCipher) -> None:
    user = await stack.user()
    secret = await _active_totp(stack, cipher, user.id)
    now = stack.clock.now()
    current = totp.time_step(now)
    async with stack.database.engine.begin() as connection:
        assert await factors.totp_state(connection, user.id) is TotpState.ACTIVE
        ok = await factors.verify_totp(
            connection, cipher, user.id, totp.code_at(secret, current), now
        )
        again = await factors.verify_totp(
            connection, cipher, user.id, totp.code_at(secret, current), now
        )
        older = await factors.verify_totp(
            connection, cipher, user.id, totp.code_at(secret, current - 1), now
        )
        wrong = await factors.verify_totp(connection, cipher, user.id, "000000", now)
    assert ok.ok
    assert (again.reason, older.reason) == (Reason.REPLAYED, Reason.REPLAYED)
    assert not wrong.ok


async def test_totp_active_is_totp_state_active(
    stack: SessionStack, cipher: EnvelopeCipher
) -> None:
    """The synchronous check password logins ask: a pending enrollment is no factor."""
    user = await stack.user()

    async def both() -> tuple[TotpState, bool]:
        async with stack.database.engine.connect() as connection:
            state = await factors.totp_state(connection, user.id)
            return state, await connection.run_sync(factors.totp_active, user.id)

    assert await both() == (TotpState.NONE, False)
    async with stack.database.engine.begin() as connection:
        sealed = factors.seal_secret(cipher, user.id, totp.new_secret())
        await factors.put_pending_totp(connection, user.id, sealed, stack.clock.now())
    assert await both() == (TotpState.PENDING, False)
    other = await stack.user("other@example.org")
    await _active_totp(stack, cipher, other.id)
    user = other
    assert await both() == (TotpState.ACTIVE, True)


async def test_concurrent_transactions_with_one_code_let_one_through(
    stack: SessionStack, cipher: EnvelopeCipher
) -> None:
    """Each attempt in its own transaction and connection, as two workers would be."""
    user = await stack.user()
    secret = await _active_totp(stack, cipher, user.id)
    now = stack.clock.now()
    code = totp.code_at(secret, totp.time_step(now))

    async def attempt() -> bool:
        async with stack.database.engine.begin() as connection:
            return (await factors.verify_totp(connection, cipher, user.id, code, now)).ok

    results = await asyncio.gather(*(attempt() for _ in range(8)))
    assert sorted(results) == [False] * 7 + [True]


async def test_a_sealed_secret_is_bound_to_its_user(
    stack: SessionStack, cipher: EnvelopeCipher
) -> None:
    ann, bob = await stack.user(), await stack.user("bob@example.org")
    secret = await _active_totp(stack, cipher, ann.id)
    now = stack.clock.now()
    async with stack.database.engine.begin() as connection:
        sealed = factors.seal_secret(cipher, ann.id, secret)
        await factors.put_pending_totp(connection, bob.id, sealed, now)  # ann's envelope
        verdict = await factors.activate_totp(
            connection, cipher, bob.id, totp.code_at(secret, totp.time_step(now)), now
        )
    assert verdict.reason is Reason.UNREADABLE_SECRET


async def test_recovery_codes_are_single_use_and_replaced_as_a_set(stack: SessionStack) -> None:
    user = await stack.user()
    now = stack.clock.now()
    async with stack.database.engine.begin() as connection:
        codes = await factors.replace_recovery_codes(connection, user.id, now)
        first = await factors.use_recovery_code(connection, user.id, codes[0], now)
        second = await factors.use_recovery_code(connection, user.id, codes[0], now)
        assert await factors.remaining_recovery_codes(connection, user.id) == 9
        fresh = await factors.replace_recovery_codes(connection, user.id, now)
        stale = await factors.use_recovery_code(connection, user.id, codes[1], now)
        assert await factors.remaining_recovery_codes(connection, user.id) == 10
    assert first.ok
    assert second.reason is Reason.SPENT
    assert stale.reason is Reason.SPENT
    assert not set(codes) & set(fresh)


async def test_marking_a_session_raises_acr_and_auth_time(stack: SessionStack) -> None:
    user = await stack.user()
    issued = await stack.sessions.create(
        user.id,
        amr=[AuthMethod.PASSWORD],
        acr=AssuranceLevel.AAL1,
        transport="bearer",
        ip=None,
        user_agent=None,
    )
    login_time = stack.clock.now()
    stack.clock.advance(timedelta(minutes=10))
    async with stack.database.engine.begin() as connection:
        before = await read_session_auth(connection, issued.session_id, user.id)
        after = await mark_authenticated(
            connection,
            session_id=issued.session_id,
            user_id=user.id,
            methods=[AuthMethod.OTP],
            level=AssuranceLevel.AAL2,
            now=stack.clock.now(),
        )
        # A weaker re-authentication never lowers the level.
        weaker = await mark_authenticated(
            connection,
            session_id=issued.session_id,
            user_id=user.id,
            methods=[AuthMethod.PASSWORD],
            level=AssuranceLevel.AAL1,
            now=stack.clock.now(),
        )
    assert before is not None
    assert before.auth_time == login_time
    assert after is not None
    assert after.amr == ("pwd", "otp", "mfa")
    assert after.acr is AssuranceLevel.AAL2
    assert after.auth_time == stack.clock.now()
    assert weaker is not None
    assert weaker.acr is AssuranceLevel.AAL2
    refreshed = await stack.sessions.refresh(issued.refresh_token)
    claims = await stack.tokens.verify(refreshed.access_token)
    assert (claims.amr, claims.acr) == (
        (AuthMethod.PASSWORD, AuthMethod.OTP, AuthMethod.MFA),
        AssuranceLevel.AAL2,
    )


async def test_a_challenge_is_consumed_once_and_expires(stack: SessionStack) -> None:
    user = await stack.user()
    now = stack.clock.now()
    ttl = timedelta(minutes=5)
    async with stack.database.engine.begin() as connection:
        issued = await challenges.issue(connection, user.id, transport="bearer", ttl=ttl, now=now)
        late = await challenges.issue(connection, user.id, transport="bearer", ttl=ttl, now=now)
    async with stack.database.engine.begin() as connection:
        assert await connection.run_sync(challenges.peek, issued.token, now) is not None
        assert await challenges.consume(connection, issued.token, now) is not None
        assert await challenges.consume(connection, issued.token, now) is None
        assert await connection.run_sync(challenges.peek, "bst_ref_" + "A" * 43, now) is None
    later = now + ttl
    async with stack.database.engine.begin() as connection:
        assert await challenges.consume(connection, late.token, later) is None
