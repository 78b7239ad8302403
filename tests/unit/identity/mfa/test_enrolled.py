"""The one-statement reads of MFA (SQLite and PostgreSQL) answer what the reads they replace
answered: an account's factors (:class:`EnrollmentRead` against the question-by-question
:func:`ask_each`), a session's authentication state (:func:`session_auth_of` against
:func:`read_session_auth`), a login challenge (:func:`challenges.peek`), each outside a
transaction (``Database.read``) and inside one."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

import pytest
from sqlalchemy import insert
from tests.common.passkeys import stored_passkey
from tests.unit.identity.conftest import SessionStack

from bastion.crypto import EnvelopeCipher
from bastion.identity.mfa import challenges, factors, totp
from bastion.identity.mfa.enrolled import EnrollmentRead, MfaStatus, ask_each
from bastion.identity.mfa.factors import TotpState
from bastion.identity.mfa.session_auth import read_session_auth, session_auth_of
from bastion.identity.mfa.webauthn.credentials import CredentialStore
from bastion.identity.mfa.webauthn.factor import PasskeyFactor
from bastion.identity.mfa.webauthn.models import webauthn_credentials
from bastion.identity.tokens.claims import AssuranceLevel, AuthMethod

#: An account's factors, built step by step: each state below adds to the one before.
STATES = ("none", "codes_alone", "pending", "active", "one_code_used", "passkey", "no_totp")


async def _add(stack: SessionStack, cipher: EnvelopeCipher, user_id: str, state: str) -> None:
    now = stack.clock.now()
    async with stack.database.engine.begin() as connection:
        if state == "codes_alone":  # recovery codes without a factor: no method
            codes = await factors.replace_recovery_codes(connection, user_id, now)
            assert len(codes) > 1
        elif state == "pending":
            sealed = factors.seal_secret(cipher, user_id, totp.new_secret())
            await factors.put_pending_totp(connection, user_id, sealed, now)
        elif state == "active":
            secret = totp.new_secret()
            await factors.put_pending_totp(
                connection, user_id, factors.seal_secret(cipher, user_id, secret), now
            )
            code = totp.code_at(secret, totp.time_step(now))
            assert (await factors.activate_totp(connection, cipher, user_id, code, now)).ok
        elif state == "one_code_used":
            codes = await factors.replace_recovery_codes(connection, user_id, now)
            assert (await factors.use_recovery_code(connection, user_id, codes[0], now)).ok
        elif state == "passkey":
            await connection.execute(
                insert(webauthn_credentials).values(stored_passkey(user_id, now))
            )
        elif state == "no_totp":
            assert await factors.delete_totp(connection, user_id)


EXPECTED = {
    "none": MfaStatus(TotpState.NONE, 0, []),
    "codes_alone": MfaStatus(TotpState.NONE, 10, []),
    "pending": MfaStatus(TotpState.PENDING, 10, []),
    "active": MfaStatus(TotpState.ACTIVE, 10, ["otp", "recovery"]),
    "one_code_used": MfaStatus(TotpState.ACTIVE, 9, ["otp", "recovery"]),
    "passkey": MfaStatus(TotpState.ACTIVE, 9, ["otp", "hwk", "swk", "recovery"]),
    "no_totp": MfaStatus(TotpState.NONE, 9, ["hwk", "swk", "recovery"]),
}


async def test_the_one_statement_read_answers_as_each_question_asked(
    stack: SessionStack, cipher: EnvelopeCipher
) -> None:
    source = PasskeyFactor(CredentialStore(stack.database))
    read = EnrollmentRead([(source.methods, source.enrolled_condition())])
    user = await stack.user()
    other = await stack.user("other@example.org")  # holds nothing: never counted for ``user``
    for state in STATES:
        await _add(stack, cipher, user.id, state)
        outside = await stack.database.read(partial(read, user_id=user.id))
        async with stack.database.engine.begin() as connection:
            inside = await connection.run_sync(read, user.id)
            asked = await ask_each([source], connection, user.id)
        assert outside == inside == asked == EXPECTED[state], state
        assert outside.enrolled is bool(EXPECTED[state].methods)
        nothing = await stack.database.read(partial(read, user_id=other.id))
        assert nothing == EXPECTED["none"]


async def test_without_sources_only_the_authenticator_app_counts(
    stack: SessionStack, cipher: EnvelopeCipher
) -> None:
    read = EnrollmentRead(())
    user = await stack.user()
    for state in ("active", "passkey"):
        await _add(stack, cipher, user.id, state)
    found = await stack.database.read(partial(read, user_id=user.id))
    assert found == MfaStatus(TotpState.ACTIVE, 0, ["otp"])  # the passkey is not asked


async def test_session_auth_of_reads_what_read_session_auth_reads(stack: SessionStack) -> None:
    user = await stack.user()
    other = await stack.user("other@example.org")
    issued = await stack.sessions.create(
        user.id,
        amr=[AuthMethod.PASSWORD, AuthMethod.OTP, AuthMethod.MFA],
        acr=AssuranceLevel.AAL2,
        transport="bearer",
        ip=None,
        user_agent=None,
    )
    for session_id, user_id in ((issued.session_id, user.id), (issued.session_id, other.id)):
        read = await stack.database.read(
            partial(session_auth_of, session_id=session_id, user_id=user_id)
        )
        async with stack.database.engine.connect() as connection:
            expected = await read_session_auth(connection, session_id, user_id)
        assert read == expected
    live = await stack.database.read(
        partial(session_auth_of, session_id=issued.session_id, user_id=user.id)
    )
    assert live is not None
    assert (live.amr, live.acr, live.auth_time) == (
        ("pwd", "otp", "mfa"),
        AssuranceLevel.AAL2,
        stack.clock.now(),
    )
    assert await stack.sessions.revoke(issued.session_id, user_id=user.id, reason="logout")
    gone = partial(session_auth_of, session_id=issued.session_id, user_id=user.id)
    assert await stack.database.read(gone) is None


@pytest.mark.parametrize("outside", [True, False])
async def test_a_peeked_challenge_is_live_unused_and_well_formed(
    stack: SessionStack, outside: bool
) -> None:
    user = await stack.user()
    now = stack.clock.now()
    ttl = timedelta(minutes=5)
    async with stack.database.engine.begin() as connection:
        issued = await challenges.issue(connection, user.id, transport="cookie", ttl=ttl, now=now)
        used = await challenges.issue(connection, user.id, transport="bearer", ttl=ttl, now=now)
        assert await challenges.consume(connection, used.token, now) is not None

    async def peek(token: str, at: object) -> challenges.PendingLogin | None:
        if outside:
            return await stack.database.read(partial(challenges.peek, token=token, now=at))
        async with stack.database.engine.begin() as connection:
            return await connection.run_sync(challenges.peek, token, at)

    pending = await peek(issued.token, now)
    assert pending is not None
    assert (pending.user_id, pending.transport, pending.expires_at) == (
        user.id,
        "cookie",
        now + ttl,
    )
    assert await peek(used.token, now) is None
    assert await peek(issued.token, now + ttl) is None  # expired
    assert await peek(issued.token[:-1] + ("B" if issued.token[-1] == "A" else "A"), now) is None
    assert await peek("bst_ref_" + "A" * 43, now) is None  # another kind of token
