"""Passkey ceremonies end to end against a software authenticator, on SQLite and PostgreSQL.

Each attack test changes one thing a real attacker controls (origin, RP id, challenge, counter,
credential, handle, bytes after signing) and checks that the server refuses it, why (the audit
reason), and that nothing was stored or moved.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from tests.common.passkeys import SoftwareAuthenticator, b64url
from tests.unit.identity.mfa.webauthn.conftest import MAX_CREDENTIALS, TTL, PasskeyStack

from bastion.audit.events import EventType
from bastion.crypto import hash_token
from bastion.identity.accounts.models import users
from bastion.identity.accounts.users import User
from bastion.identity.mfa.webauthn.challenges import PURGE_AFTER
from bastion.identity.mfa.webauthn.credentials import Passkey
from bastion.identity.mfa.webauthn.errors import (
    AssertionRejected,
    CeremonyInvalid,
    CredentialLimitReached,
    FailureReason,
    RegistrationRejected,
    UserVerificationRequired,
    WebAuthnError,
)
from bastion.identity.mfa.webauthn.factor import PasskeyFactor
from bastion.identity.mfa.webauthn.models import webauthn_challenges, webauthn_credentials
from bastion.identity.tokens.claims import AssuranceLevel, AuthMethod

SCOPE: dict[str, Any] = {"type": "http", "headers": [], "state": {}}
BINDING = "a" * 64


async def register(
    stack: PasskeyStack, user: User, device: SoftwareAuthenticator, name: str | None = None
) -> Passkey:
    ceremony = await stack.service.begin_registration(user)
    response = device.create(ceremony.options)
    return await stack.service.finish_registration(
        user.id, ceremony.handle, response, name=name, scope=SCOPE
    )


def last_failure(stack: PasskeyStack) -> str | None:
    return stack.recorder.of(EventType.IDENTITY_WEBAUTHN_FAILED)[-1].reason


async def expect_rejected(
    stack: PasskeyStack, error: type[WebAuthnError], reason: FailureReason, call: Any
) -> None:
    with pytest.raises(error) as caught:
        await call
    assert caught.value.reason is reason
    assert last_failure(stack) == reason.value


async def stored_count(stack: PasskeyStack, passkey: Passkey) -> int:
    query = select(webauthn_credentials.c.sign_count).where(webauthn_credentials.c.id == passkey.id)
    async with stack.database.engine.connect() as connection:
        return int((await connection.execute(query)).scalar_one())


# -- the happy paths -------------------------------------------------------------------------
async def test_register_then_log_in_without_password(passkeys: PasskeyStack) -> None:
    user = await passkeys.user()
    device = passkeys.authenticator()
    ceremony = await passkeys.service.begin_registration(user)
    options = ceremony.options
    assert options["rp"] == {"id": "localhost", "name": "Bastion"}
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    assert options["attestation"] == "none"
    passkey = await passkeys.service.finish_registration(
        user.id, ceremony.handle, device.create(options), name="Laptop", scope=SCOPE
    )
    assert (passkey.user_id, passkey.name, passkey.sign_count) == (user.id, "Laptop", 0)
    assert passkey.credential_id == device.credentials[0].credential_id

    login = await passkeys.service.begin_login()
    assert login.options["allowCredentials"] == []  # discoverable: no account named
    assert login.options["userVerification"] == "required"
    verified = await passkeys.service.finish_login(
        login.handle, device.get(login.options), scope=SCOPE
    )
    assert (verified.user_id, verified.passkey.id, verified.user_verified) == (
        user.id,
        passkey.id,
        True,
    )
    amr, acr = verified.first_factor()
    assert (amr, acr) == ([AuthMethod.HARDWARE_KEY, AuthMethod.MFA], AssuranceLevel.AAL2)
    assert await stored_count(passkeys, passkey) == 1
    assert passkeys.recorder.of(EventType.IDENTITY_WEBAUTHN_REGISTERED)[0].subject == (
        f"user:{user.id}"
    )
    used = passkeys.recorder.of(EventType.IDENTITY_WEBAUTHN_USED)
    assert used[0].details["webauthn_id"] == passkey.id


async def test_a_synced_passkey_is_a_software_key(passkeys: PasskeyStack) -> None:
    user = await passkeys.user()
    device = passkeys.authenticator(backup_eligible=True)
    passkey = await register(passkeys, user, device)
    assert passkey.backup_eligible
    login = await passkeys.service.begin_login()
    response = device.get(login.options)
    assert await passkeys.service.method_for(response) is AuthMethod.SOFTWARE_KEY
    assert await passkeys.service.method_for({"id": "junk"}) is AuthMethod.HARDWARE_KEY
    verified = await passkeys.service.finish_login(login.handle, response, scope=SCOPE)
    assert verified.method is AuthMethod.SOFTWARE_KEY


async def test_a_counterless_authenticator_is_accepted(passkeys: PasskeyStack) -> None:
    # Many platform passkeys always report 0: 0 after 0 is not a regression (§6.1.1).
    user = await passkeys.user()
    device = passkeys.authenticator(counter_step=0)
    passkey = await register(passkeys, user, device)
    for _ in range(2):
        login = await passkeys.service.begin_login()
        await passkeys.service.finish_login(login.handle, device.get(login.options), scope=SCOPE)
    assert await stored_count(passkeys, passkey) == 0


async def test_several_named_passkeys_listed_renamed_deleted(passkeys: PasskeyStack) -> None:
    user = await passkeys.user()
    phone, key = passkeys.authenticator(), passkeys.authenticator()
    first = await register(passkeys, user, phone)
    passkeys.clock.advance(timedelta(seconds=1))  # listed oldest first
    second = await register(passkeys, user, key, name="YubiKey")
    assert first.name == "Passkey 1"
    assert [p.name for p in await passkeys.service.list(user.id)] == ["Passkey 1", "YubiKey"]

    # The second registration excluded the first credential (no double registration).
    ceremony = await passkeys.service.begin_registration(user)
    excluded = [c["id"] for c in ceremony.options["excludeCredentials"]]
    assert excluded == [b64url(first.credential_id), b64url(second.credential_id)]

    renamed = await passkeys.service.rename(user.id, first.id, "Phone", scope=SCOPE)
    assert renamed.name == "Phone"
    deleted = await passkeys.service.delete(user.id, second.id, scope=SCOPE)
    assert deleted.id == second.id
    assert [p.name for p in await passkeys.service.list(user.id)] == ["Phone"]
    assert passkeys.recorder.of(EventType.IDENTITY_WEBAUTHN_RENAMED)
    assert passkeys.recorder.of(EventType.IDENTITY_WEBAUTHN_DELETED)[0].details["webauthn_id"] == (
        second.id
    )

    # A deleted passkey no longer logs in.
    login = await passkeys.service.begin_login()
    await expect_rejected(
        passkeys,
        AssertionRejected,
        FailureReason.UNKNOWN_CREDENTIAL,
        passkeys.service.finish_login(login.handle, key.get(login.options), scope=SCOPE),
    )


async def test_another_accounts_passkey_cannot_be_renamed_or_deleted(
    passkeys: PasskeyStack,
) -> None:
    owner, other = await passkeys.user(), await passkeys.user("bob@example.org")
    passkey = await register(passkeys, owner, passkeys.authenticator())
    with pytest.raises(LookupError):
        await passkeys.service.delete(other.id, passkey.id, scope=SCOPE)
    with pytest.raises(LookupError):
        await passkeys.service.rename(other.id, passkey.id, "mine now", scope=SCOPE)
    with pytest.raises(LookupError):
        await passkeys.service.delete(owner.id, "not\x00an id", scope=SCOPE)
    assert [p.name for p in await passkeys.service.list(owner.id)] == [passkey.name]


async def test_the_number_of_passkeys_is_bounded(passkeys: PasskeyStack) -> None:
    user = await passkeys.user()
    for _ in range(MAX_CREDENTIALS):
        await register(passkeys, user, passkeys.authenticator())
    with pytest.raises(CredentialLimitReached):
        await passkeys.service.begin_registration(user)


# -- challenges: single use, short-lived, bound ------------------------------------------------
async def test_a_registration_challenge_is_single_use(passkeys: PasskeyStack) -> None:
    user = await passkeys.user()
    device = passkeys.authenticator()
    ceremony = await passkeys.service.begin_registration(user)
    response = device.create(ceremony.options)
    await passkeys.service.finish_registration(
        user.id, ceremony.handle, response, name=None, scope=SCOPE
    )
    await expect_rejected(
        passkeys,
        CeremonyInvalid,
        FailureReason.CEREMONY_UNKNOWN,
        passkeys.service.finish_registration(
            user.id, ceremony.handle, response, name=None, scope=SCOPE
        ),
    )


async def test_a_replayed_assertion_is_refused(passkeys: PasskeyStack) -> None:
    user = await passkeys.user()
    device = passkeys.authenticator()
    await register(passkeys, user, device)
    login = await passkeys.service.begin_login()
    response = device.get(login.options)
    await passkeys.service.finish_login(login.handle, response, scope=SCOPE)
    await expect_rejected(
        passkeys,
        CeremonyInvalid,
        FailureReason.CEREMONY_UNKNOWN,
        passkeys.service.finish_login(login.handle, response, scope=SCOPE),
    )
    # Replayed under a fresh ceremony, the old challenge inside does not match it.
    fresh = await passkeys.service.begin_login()
    await expect_rejected(
        passkeys,
        AssertionRejected,
        FailureReason.CHALLENGE,
        passkeys.service.finish_login(fresh.handle, response, scope=SCOPE),
    )


async def test_a_failed_attempt_uses_up_the_ceremony(passkeys: PasskeyStack) -> None:
    user = await passkeys.user()
    device = passkeys.authenticator()
    await register(passkeys, user, device)
    login = await passkeys.service.begin_login()
    with pytest.raises(AssertionRejected):
        await passkeys.service.finish_login(
            login.handle, device.get(login.options, origin="https://evil.example"), scope=SCOPE
        )
    with pytest.raises(CeremonyInvalid):
        await passkeys.service.finish_login(login.handle, device.get(login.options), scope=SCOPE)


async def test_an_expired_challenge_is_refused(passkeys: PasskeyStack) -> None:
    user = await passkeys.user()
    device = passkeys.authenticator()
    ceremony = await passkeys.service.begin_registration(user)
    passkeys.clock.advance(TTL + timedelta(seconds=1))
    await expect_rejected(
        passkeys,
        CeremonyInvalid,
        FailureReason.CEREMONY_UNKNOWN,
        passkeys.service.finish_registration(
            user.id, ceremony.handle, device.create(ceremony.options), name=None, scope=SCOPE
        ),
    )
    assert await passkeys.service.list(user.id) == []


async def test_a_ceremony_is_bound_to_its_user_and_purpose(passkeys: PasskeyStack) -> None:
    victim, attacker = await passkeys.user(), await passkeys.user("eve@example.org")
    device = passkeys.authenticator()
    ceremony = await passkeys.service.begin_registration(victim)
    # Another account cannot finish it (a passkey planted on the victim's account).
    await expect_rejected(
        passkeys,
        CeremonyInvalid,
        FailureReason.CEREMONY_MISMATCH,
        passkeys.service.finish_registration(
            attacker.id, ceremony.handle, device.create(ceremony.options), name=None, scope=SCOPE
        ),
    )
    # A registration ceremony is not a login ceremony.
    other = await passkeys.service.begin_registration(victim)
    await register(passkeys, victim, device)
    await expect_rejected(
        passkeys,
        CeremonyInvalid,
        FailureReason.CEREMONY_MISMATCH,
        passkeys.service.finish_login(other.handle, device.get(other.options), scope=SCOPE),
    )


async def test_a_malformed_handle_or_response_is_a_clean_rejection(
    passkeys: PasskeyStack,
) -> None:
    user = await passkeys.user()
    with pytest.raises(CeremonyInvalid):
        await passkeys.service.finish_login("bst_wac_short", {}, scope=SCOPE)
    for junk in ({}, {"id": 1}, {"id": "x", "rawId": "***", "response": {}, "type": "public-key"}):
        login = await passkeys.service.begin_login()
        await expect_rejected(
            passkeys,
            AssertionRejected,
            FailureReason.MALFORMED,
            passkeys.service.finish_login(login.handle, junk, scope=SCOPE),
        )
        ceremony = await passkeys.service.begin_registration(user)
        with pytest.raises(RegistrationRejected):
            await passkeys.service.finish_registration(
                user.id, ceremony.handle, junk, name=None, scope=SCOPE
            )


# -- phishing: origin and RP id --------------------------------------------------------------
async def test_registration_from_another_origin_is_refused(passkeys: PasskeyStack) -> None:
    user = await passkeys.user()
    ceremony = await passkeys.service.begin_registration(user)
    response = passkeys.authenticator().create(ceremony.options, origin="https://evil.example")
    await expect_rejected(
        passkeys,
        RegistrationRejected,
        FailureReason.ORIGIN,
        passkeys.service.finish_registration(
            user.id, ceremony.handle, response, name=None, scope=SCOPE
        ),
    )
    assert await passkeys.service.list(user.id) == []


async def test_registration_for_another_rp_id_is_refused(passkeys: PasskeyStack) -> None:
    user = await passkeys.user()
    ceremony = await passkeys.service.begin_registration(user)
    response = passkeys.authenticator().create(ceremony.options, rp_id="evil.example")
    await expect_rejected(
        passkeys,
        RegistrationRejected,
        FailureReason.RP_ID,
        passkeys.service.finish_registration(
            user.id, ceremony.handle, response, name=None, scope=SCOPE
        ),
    )


async def test_an_assertion_from_another_origin_or_rp_id_is_refused(
    passkeys: PasskeyStack,
) -> None:
    user = await passkeys.user()
    device = passkeys.authenticator()
    passkey = await register(passkeys, user, device)
    for change, reason in (
        ({"origin": "http://localhost:8001"}, FailureReason.ORIGIN),
        ({"origin": "https://localhost:8000"}, FailureReason.ORIGIN),
        ({"rp_id": "evil.example"}, FailureReason.RP_ID),
        ({"tamper_client_data": True}, FailureReason.SIGNATURE),
    ):
        login = await passkeys.service.begin_login()
        await expect_rejected(
            passkeys,
            AssertionRejected,
            reason,
            passkeys.service.finish_login(
                login.handle, device.get(login.options, **change), scope=SCOPE
            ),
        )
    assert await stored_count(passkeys, passkey) == 0  # nothing moved


async def test_a_registration_response_is_not_an_assertion(passkeys: PasskeyStack) -> None:
    user = await passkeys.user()
    device = passkeys.authenticator()
    await register(passkeys, user, device)
    ceremony = await passkeys.service.begin_registration(user)
    # A create() response for the login challenge: type webauthn.create, not webauthn.get.
    login = await passkeys.service.begin_login()
    created = device.create(ceremony.options, challenge=bytes.fromhex("00" * 32))
    with pytest.raises(AssertionRejected):
        await passkeys.service.finish_login(login.handle, created, scope=SCOPE)


# -- cloned authenticators: the sign count -----------------------------------------------------
async def test_a_sign_count_that_goes_back_is_a_clone(passkeys: PasskeyStack) -> None:
    user = await passkeys.user()
    device = passkeys.authenticator()
    passkey = await register(passkeys, user, device)
    for _ in range(3):
        login = await passkeys.service.begin_login()
        await passkeys.service.finish_login(login.handle, device.get(login.options), scope=SCOPE)
    assert await stored_count(passkeys, passkey) == 3

    for count in (3, 2, 0):  # equal, lower, reset: all regressions
        login = await passkeys.service.begin_login()
        clone = device.get(login.options, sign_count=count)
        await expect_rejected(
            passkeys,
            AssertionRejected,
            FailureReason.SIGN_COUNT,
            passkeys.service.finish_login(login.handle, clone, scope=SCOPE),
        )
    alarms = passkeys.recorder.of(EventType.IDENTITY_WEBAUTHN_SIGN_COUNT_REGRESSED)
    assert [(a.details["stored_sign_count"], a.details["received_sign_count"]) for a in alarms] == [
        (3, 3),
        (3, 2),
        (3, 0),
    ]
    assert alarms[0].subject == f"user:{user.id}"
    assert await stored_count(passkeys, passkey) == 3
    # The genuine authenticator, counting on, still works.
    login = await passkeys.service.begin_login()
    await passkeys.service.finish_login(login.handle, device.get(login.options), scope=SCOPE)
    assert await stored_count(passkeys, passkey) == 4


async def test_a_forged_low_count_raises_no_clone_alarm(passkeys: PasskeyStack) -> None:
    # The counter is compared only after the signature verified: garbage is not a "clone".
    user = await passkeys.user()
    device = passkeys.authenticator()
    await register(passkeys, user, device)
    login = await passkeys.service.begin_login()
    await passkeys.service.finish_login(login.handle, device.get(login.options), scope=SCOPE)
    login = await passkeys.service.begin_login()
    forged = device.get(login.options, sign_count=0, tamper_client_data=True)
    await expect_rejected(
        passkeys,
        AssertionRejected,
        FailureReason.SIGNATURE,
        passkeys.service.finish_login(login.handle, forged, scope=SCOPE),
    )
    assert not passkeys.recorder.of(EventType.IDENTITY_WEBAUTHN_SIGN_COUNT_REGRESSED)


# -- whose credential ------------------------------------------------------------------------
async def test_another_users_passkey_is_not_a_second_factor(passkeys: PasskeyStack) -> None:
    victim, attacker = await passkeys.user(), await passkeys.user("eve@example.org")
    await register(passkeys, victim, passkeys.authenticator())
    attacker_device = passkeys.authenticator()
    await register(passkeys, attacker, attacker_device)
    ceremony = await passkeys.service.begin_second_factor(victim.id, binding=BINDING)
    # The attacker answers the victim's challenge with their own (valid) passkey.
    response = attacker_device.get(ceremony.options, credential=attacker_device.credentials[0])
    async with passkeys.database.engine.begin() as connection:
        await expect_rejected(
            passkeys,
            AssertionRejected,
            FailureReason.WRONG_USER,
            passkeys.service.verify_second_factor(
                connection, victim.id, ceremony.handle, response, binding=BINDING, scope=SCOPE
            ),
        )


async def test_a_second_factor_is_bound_to_its_login_attempt(passkeys: PasskeyStack) -> None:
    user = await passkeys.user()
    device = passkeys.authenticator(user_verified=False)
    await register(passkeys, user, device)
    ceremony = await passkeys.service.begin_second_factor(user.id, binding=BINDING)
    response = device.get(ceremony.options)
    async with passkeys.database.engine.begin() as connection:
        with pytest.raises(CeremonyInvalid):
            await passkeys.service.verify_second_factor(
                connection, user.id, ceremony.handle, response, binding="b" * 64, scope=SCOPE
            )
    # In a transaction that rolls back, nothing is consumed: the right login attempt goes on.
    ceremony = await passkeys.service.begin_second_factor(user.id, binding=BINDING)
    async with passkeys.database.engine.begin() as connection:
        verified = await passkeys.service.verify_second_factor(
            connection,
            user.id,
            ceremony.handle,
            device.get(ceremony.options),
            binding=BINDING,
            scope=SCOPE,
        )
    # Without user verification a passkey is still a second factor (password + possession).
    assert (verified.user_id, verified.user_verified) == (user.id, False)
    # Alone, such an assertion would be possession only: never aal2.
    assert verified.first_factor() == ([AuthMethod.HARDWARE_KEY], AssuranceLevel.AAL1)


async def test_a_user_handle_naming_someone_else_is_refused(passkeys: PasskeyStack) -> None:
    user, other = await passkeys.user(), await passkeys.user("bob@example.org")
    device = passkeys.authenticator()
    await register(passkeys, user, device)
    for handle, reason in (
        (other.id.encode(), FailureReason.USER_HANDLE),
        (False, FailureReason.USER_HANDLE),  # not discoverable: no handle, no passwordless
    ):
        login = await passkeys.service.begin_login()
        await expect_rejected(
            passkeys,
            AssertionRejected,
            reason,
            passkeys.service.finish_login(
                login.handle, device.get(login.options, user_handle=handle), scope=SCOPE
            ),
        )


async def test_a_passwordless_login_needs_user_verification(passkeys: PasskeyStack) -> None:
    user = await passkeys.user()
    device = passkeys.authenticator(user_verified=False)
    await register(passkeys, user, device)
    login = await passkeys.service.begin_login()
    await expect_rejected(
        passkeys,
        UserVerificationRequired,
        FailureReason.USER_VERIFICATION,
        passkeys.service.finish_login(login.handle, device.get(login.options), scope=SCOPE),
    )


async def test_a_disabled_account_cannot_log_in_with_its_passkey(passkeys: PasskeyStack) -> None:
    user = await passkeys.user()
    device = passkeys.authenticator()
    await register(passkeys, user, device)
    async with passkeys.database.engine.begin() as connection:
        await connection.execute(update(users).where(users.c.id == user.id).values(disabled=True))
    login = await passkeys.service.begin_login()
    await expect_rejected(
        passkeys,
        AssertionRejected,
        FailureReason.ACCOUNT_UNUSABLE,
        passkeys.service.finish_login(login.handle, device.get(login.options), scope=SCOPE),
    )


async def test_one_credential_cannot_be_registered_twice(passkeys: PasskeyStack) -> None:
    user, other = await passkeys.user(), await passkeys.user("bob@example.org")
    device = passkeys.authenticator()
    await register(passkeys, user, device)
    # The same credential (id and key) attested again, for another account: refused, the
    # first owner keeps it.
    ceremony = await passkeys.service.begin_registration(other)
    response = device.create(ceremony.options, reuse=device.credentials[0])
    await expect_rejected(
        passkeys,
        RegistrationRejected,
        FailureReason.DUPLICATE,
        passkeys.service.finish_registration(
            other.id, ceremony.handle, response, name=None, scope=SCOPE
        ),
    )
    assert await passkeys.service.list(other.id) == []


async def test_the_credential_id_must_be_the_attested_one(passkeys: PasskeyStack) -> None:
    user = await passkeys.user()
    ceremony = await passkeys.service.begin_registration(user)
    response = passkeys.authenticator().create(ceremony.options)
    response["id"] = response["rawId"] = b64url(b"another id")
    await expect_rejected(
        passkeys,
        RegistrationRejected,
        FailureReason.MALFORMED,
        passkeys.service.finish_registration(
            user.id, ceremony.handle, response, name=None, scope=SCOPE
        ),
    )


async def test_two_finishes_racing_for_one_ceremony_one_wins(passkeys: PasskeyStack) -> None:
    user = await passkeys.user()
    device = passkeys.authenticator()
    await register(passkeys, user, device)
    login = await passkeys.service.begin_login()
    response = device.get(login.options)
    results = await asyncio.gather(
        passkeys.service.finish_login(login.handle, response, scope=SCOPE),
        passkeys.service.finish_login(login.handle, response, scope=SCOPE),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["CeremonyInvalid", "VerifiedPasskey"]


async def test_passkeys_are_a_factor_the_mfa_policy_sees(passkeys: PasskeyStack) -> None:
    user, other = await passkeys.user(), await passkeys.user("bob@example.org")
    factor = PasskeyFactor(passkeys.service.credentials)
    assert set(factor.methods) == {"hwk", "swk"}
    for _ in range(2):
        await register(passkeys, user, passkeys.authenticator())
    await register(passkeys, other, passkeys.authenticator())
    async with passkeys.database.engine.begin() as connection:
        assert await factor.is_enrolled(connection, user.id)
        assert await factor.remove_all(connection, user.id) == 2  # an admin's MFA reset
        assert not await factor.is_enrolled(connection, user.id)
        assert await factor.is_enrolled(connection, other.id)
        # The same answers synchronously (a password login asks inside its transaction).
        assert not await connection.run_sync(factor.holds_factor, user.id)
        assert await connection.run_sync(factor.holds_factor, other.id)


async def test_expired_challenges_are_purged(passkeys: PasskeyStack) -> None:
    # Begins from anyone store rows: the stale ones go, so the table stays bounded.
    for _ in range(3):
        await passkeys.service.begin_login()
    passkeys.clock.advance(TTL + PURGE_AFTER + timedelta(seconds=1))
    fresh = await passkeys.service.begin_login()
    async with passkeys.database.engine.connect() as connection:
        rows = (await connection.execute(select(webauthn_challenges.c.handle_hash))).all()
    assert [row.handle_hash for row in rows] == [hash_token(fresh.handle)]
