"""Passkeys of an account: registration, use (second factor or passwordless), list, rename, delete.

Each ceremony has two steps. *Begin* stores a challenge (:mod:`.challenges`) and returns the
options for ``navigator.credentials.create()`` / ``.get()`` with an opaque ceremony handle;
*finish* consumes that challenge (single use, expiring) and verifies the browser's response
(:mod:`.ceremonies`). An assertion is accepted only when, in order: the ceremony is live and of
the right purpose and user; the credential is known (and the user's, for a second factor); the
user handle, if any, names the credential's owner; client data type, challenge, origin, RP id,
user presence and signature verify; the signature counter moved forward (else the credential
is a clone: rejected and ``identity:webauthn:sign_count_regressed`` recorded); and, for a
passwordless login, the authenticator verified the user and the account is enabled.

User handle: the account id's UTF-8 bytes. It is random (UUIDv4), carries no personal data
(WebAuthn §14.6.1) and maps a discoverable credential back to its account.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from bastion.audit.context import record_from_scope
from bastion.audit.events import EventType, Outcome
from bastion.audit.interfaces import AuditRecorder
from bastion.clock import Clock
from bastion.crypto import constant_time_equals
from bastion.identity.accounts.users import User, get_user
from bastion.identity.mfa.webauthn.ceremonies import RelyingParty, parse_assertion, rejected
from bastion.identity.mfa.webauthn.challenges import ChallengeStore, Purpose
from bastion.identity.mfa.webauthn.credentials import CredentialStore, NewCredential, Passkey
from bastion.identity.mfa.webauthn.errors import (
    AssertionRejected,
    CredentialLimitReached,
    FailureReason,
    RegistrationRejected,
    UserVerificationRequired,
    WebAuthnError,
)
from bastion.identity.tokens.claims import AssuranceLevel, AuthMethod
from bastion.storage import Database

__all__ = ["Ceremony", "VerifiedPasskey", "WebAuthnService", "method_of"]

Scope = Mapping[str, Any]
DEFAULT_NAME = "Passkey"


@dataclass(frozen=True, slots=True)
class Ceremony:
    """What a *begin* step hands the client: the handle to finish with and the options."""

    handle: str
    options: dict[str, Any]


def method_of(passkey: Passkey) -> AuthMethod:
    """``swk`` for a synced (backup-eligible) passkey, whose private key leaves the device in a
    software keychain; ``hwk`` for a device-bound one (security key, TPM, secure enclave)."""
    return AuthMethod.SOFTWARE_KEY if passkey.backup_eligible else AuthMethod.HARDWARE_KEY


@dataclass(frozen=True, slots=True)
class VerifiedPasskey:
    """A verified assertion: who, with which passkey, and whether the user was verified."""

    user_id: str
    passkey: Passkey
    user_verified: bool

    @property
    def method(self) -> AuthMethod:
        return method_of(self.passkey)

    def first_factor(self) -> tuple[list[AuthMethod], AssuranceLevel]:
        """``amr`` and ``acr`` of a passwordless login. With user verification (which
        :meth:`WebAuthnService.finish_login` requires): possession of the key plus the PIN or
        biometric that unlocked it, two factors, aal2. Without it: possession alone, aal1."""
        if self.user_verified:
            return [self.method, AuthMethod.MFA], AssuranceLevel.AAL2
        return [self.method], AssuranceLevel.AAL1


@dataclass(slots=True)
class _Attempt:
    """An assertion being verified, and what it revealed before it failed (for the audit)."""

    purpose: Purpose
    user_id: str | None
    passkey: Passkey | None = None


def user_handle_of(user_id: str) -> bytes:
    return user_id.encode("utf-8")


class WebAuthnService:
    """The passkey ceremonies and the management of an account's passkeys."""

    def __init__(
        self,
        database: Database,
        relying_party: RelyingParty,
        challenges: ChallengeStore,
        *,
        max_credentials: int,
        audit: AuditRecorder,
        clock: Clock,
    ) -> None:
        self.database = database
        self.rp = relying_party
        self.challenges = challenges
        self.credentials = CredentialStore(database)
        self.max_credentials = max_credentials
        self._audit = audit
        self._clock = clock

    # -- registration ------------------------------------------------------------------------
    async def begin_registration(self, user: User) -> Ceremony:
        existing = await self.credentials.list(user.id)
        if len(existing) >= self.max_credentials:
            raise CredentialLimitReached(FailureReason.LIMIT)
        issued = await self.challenges.issue(Purpose.REGISTER, user_id=user.id)
        options = self.rp.registration_options(
            challenge=issued.challenge,
            user_handle=user_handle_of(user.id),
            user_name=user.email,
            display_name=user.display_name,
            exclude=[p.credential_id for p in existing],
        )
        return Ceremony(issued.handle, options)

    async def finish_registration(
        self,
        user_id: str,
        handle: str,
        credential: Mapping[str, Any],
        *,
        name: str | None,
        scope: Scope,
    ) -> Passkey:
        """Verify the attestation and store the passkey. Raises CeremonyInvalid,
        RegistrationRejected, CredentialLimitReached."""
        try:
            challenge = await self.challenges.consume(handle, Purpose.REGISTER, user_id=user_id)
            new, user_verified = self.rp.verify_registration(credential, challenge=challenge)
            passkey = await self._store(user_id, new, name)
        except WebAuthnError as exc:
            self._failed(scope, exc, _Attempt(Purpose.REGISTER, user_id))
            raise
        self._record(
            scope,
            EventType.IDENTITY_WEBAUTHN_REGISTERED,
            user_id,
            passkey,
            {"user_verified": user_verified, "aaguid": passkey.aaguid},
        )
        return passkey

    async def _store(self, user_id: str, new: NewCredential, name: str | None) -> Passkey:
        now = self._clock.now()
        try:
            async with self.database.engine.begin() as connection:
                count = await self.credentials.count(connection, user_id)
                if count >= self.max_credentials:
                    raise CredentialLimitReached(FailureReason.LIMIT)
                if await self.credentials.exists(connection, new.credential_id):
                    raise RegistrationRejected(FailureReason.DUPLICATE)
                return await self.credentials.add(
                    connection, user_id, new, name=name or f"{DEFAULT_NAME} {count + 1}", now=now
                )
        except IntegrityError as exc:
            # Two registrations of one credential id at once: the unique index decides.
            raise RegistrationRejected(FailureReason.DUPLICATE) from exc

    # -- authentication ----------------------------------------------------------------------
    async def begin_login(self) -> Ceremony:
        """A passwordless login: no account named, discoverable credentials, UV required."""
        issued = await self.challenges.issue(Purpose.LOGIN, user_id=None)
        options = self.rp.authentication_options(
            challenge=issued.challenge, allow=[], user_verification="required"
        )
        return Ceremony(issued.handle, options)

    async def finish_login(
        self, handle: str, credential: Mapping[str, Any], *, scope: Scope
    ) -> VerifiedPasskey:
        """Raises CeremonyInvalid, AssertionRejected, UserVerificationRequired."""
        attempt = _Attempt(Purpose.LOGIN, None)
        try:
            # Consumed in a transaction of its own: a ceremony is worth one try, even a failed one.
            challenge = await self.challenges.consume(handle, Purpose.LOGIN, user_id=None)
            async with self.database.engine.begin() as connection:
                result = await self._verify_assertion(
                    connection, attempt, challenge, credential, scope
                )
        except WebAuthnError as exc:
            self._failed(scope, exc, attempt)
            raise
        self._used(scope, result, Purpose.LOGIN)
        return result

    async def begin_second_factor(self, user_id: str, *, binding: str) -> Ceremony:
        """A second factor for ``user_id``, bound to ``binding`` (the digest of the login's MFA
        challenge): only that login attempt can finish it."""
        passkeys = await self.credentials.list(user_id)
        issued = await self.challenges.issue(
            Purpose.SECOND_FACTOR, user_id=user_id, binding=binding
        )
        options = self.rp.authentication_options(
            challenge=issued.challenge,
            allow=[p.credential_id for p in passkeys],
            user_verification="preferred",
        )
        return Ceremony(issued.handle, options)

    async def verify_second_factor(
        self,
        connection: AsyncConnection,
        user_id: str,
        handle: str,
        credential: Mapping[str, Any],
        *,
        binding: str,
        scope: Scope,
    ) -> VerifiedPasskey:
        """Verify a passkey as ``user_id``'s second factor, in the caller's transaction (the one
        that consumes the login's MFA challenge: if it rolls back, so does this ceremony).
        Raises CeremonyInvalid, AssertionRejected."""
        attempt = _Attempt(Purpose.SECOND_FACTOR, user_id)
        try:
            challenge = await self.challenges.consume(
                handle,
                Purpose.SECOND_FACTOR,
                user_id=user_id,
                binding=binding,
                connection=connection,
            )
            result = await self._verify_assertion(connection, attempt, challenge, credential, scope)
        except WebAuthnError as exc:
            self._failed(scope, exc, attempt)
            raise
        self._used(scope, result, Purpose.SECOND_FACTOR)
        return result

    async def _verify_assertion(
        self,
        connection: AsyncConnection,
        attempt: _Attempt,
        challenge: bytes,
        credential: Mapping[str, Any],
        scope: Scope,
    ) -> VerifiedPasskey:
        parsed = parse_assertion(credential)
        passkey = attempt.passkey = await self._owned_passkey(
            connection, parsed.raw_id, parsed.response.user_handle, attempt.user_id
        )
        verified = self.rp.verify_assertion(
            parsed, challenge=challenge, public_key=passkey.public_key
        )
        self._check_counter(passkey, verified.new_sign_count, scope)
        if attempt.purpose is Purpose.LOGIN:
            await self._check_first_factor(
                connection, passkey, user_verified=verified.user_verified
            )
        now = self._clock.now()
        if not await self.credentials.record_use(connection, passkey, verified.new_sign_count, now):
            # Another assertion moved the counter meanwhile: only one of two may win.
            raise AssertionRejected(FailureReason.SIGN_COUNT)
        used = replace(passkey, sign_count=verified.new_sign_count, last_used_at=now)
        return VerifiedPasskey(passkey.user_id, used, verified.user_verified)

    async def _owned_passkey(
        self,
        connection: AsyncConnection,
        credential_id: bytes,
        user_handle: bytes | None,
        user_id: str | None,
    ) -> Passkey:
        passkey = await self.credentials.by_credential_id(connection, credential_id)
        if passkey is None:
            raise AssertionRejected(FailureReason.UNKNOWN_CREDENTIAL)
        if user_id is not None and passkey.user_id != user_id:
            raise AssertionRejected(FailureReason.WRONG_USER)
        # WebAuthn §7.2 step 6: a user handle, when given, must name the credential's owner.
        if user_handle is not None and not constant_time_equals(
            user_handle, user_handle_of(passkey.user_id)
        ):
            raise AssertionRejected(FailureReason.USER_HANDLE)
        if user_id is None and user_handle is None:
            # A passwordless login needs a discoverable credential, which returns its handle.
            raise AssertionRejected(FailureReason.USER_HANDLE)
        return passkey

    def _check_counter(self, passkey: Passkey, new_count: int, scope: Scope) -> None:
        # WebAuthn §6.1.1: a counter that does not grow (both not zero) means two copies of the
        # private key exist: a cloned authenticator. Checked after the signature, so a forged
        # response never raises the alarm.
        stored = passkey.sign_count
        if (new_count > 0 or stored > 0) and new_count <= stored:
            record_from_scope(
                self._audit,
                scope,
                EventType.IDENTITY_WEBAUTHN_SIGN_COUNT_REGRESSED,
                Outcome.FAILURE,
                actor=None,
                subject=f"user:{passkey.user_id}",
                reason=FailureReason.SIGN_COUNT.value,
                details={
                    "webauthn_id": passkey.id,
                    "stored_sign_count": stored,
                    "received_sign_count": new_count,
                },
                clock=self._clock,
            )
            raise AssertionRejected(FailureReason.SIGN_COUNT)

    async def _check_first_factor(
        self, connection: AsyncConnection, passkey: Passkey, *, user_verified: bool
    ) -> None:
        if not user_verified:
            raise UserVerificationRequired(FailureReason.USER_VERIFICATION)
        user = await get_user(connection, passkey.user_id)
        if user is None or user.disabled or not user.email_verified:
            raise AssertionRejected(FailureReason.ACCOUNT_UNUSABLE)

    async def method_for(self, credential: Mapping[str, Any]) -> AuthMethod:
        """``hwk`` or ``swk``: the kind of the stored passkey an assertion names, before it is
        verified (the MFA service records the method up front); ``hwk`` when it names none
        (the verification then fails anyway)."""
        try:
            parsed = parse_assertion(credential)
        except AssertionRejected:
            return AuthMethod.HARDWARE_KEY
        passkey = await self.credentials.read_by_credential_id(parsed.raw_id)
        return method_of(passkey) if passkey is not None else AuthMethod.HARDWARE_KEY

    # -- management --------------------------------------------------------------------------
    async def list(self, user_id: str) -> list[Passkey]:
        return await self.credentials.list(user_id)

    async def has_passkeys(self, user_id: str) -> bool:
        return bool(await self.credentials.list(user_id))

    async def rename(self, user_id: str, passkey_id: str, name: str, *, scope: Scope) -> Passkey:
        """Raises :class:`LookupError` for an unknown passkey or another account's."""
        passkey = await self.credentials.rename(user_id, passkey_id, name)
        if passkey is None:
            raise LookupError(passkey_id)
        self._record(scope, EventType.IDENTITY_WEBAUTHN_RENAMED, user_id, passkey)
        return passkey

    async def delete(
        self, user_id: str, passkey_id: str, *, scope: Scope, actor: str | None = None
    ) -> Passkey:
        """Raises :class:`LookupError` for an unknown passkey or another account's."""
        passkey = await self.credentials.delete(user_id, passkey_id)
        if passkey is None:
            raise LookupError(passkey_id)
        self._record(scope, EventType.IDENTITY_WEBAUTHN_DELETED, user_id, passkey, actor=actor)
        return passkey

    # -- audit -------------------------------------------------------------------------------
    def _record(
        self,
        scope: Scope,
        type_: EventType,
        user_id: str,
        passkey: Passkey,
        details: Mapping[str, Any] | None = None,
        *,
        actor: str | None = None,
    ) -> None:
        subject = f"user:{user_id}"
        record_from_scope(
            self._audit,
            scope,
            type_,
            Outcome.SUCCESS,
            actor=actor or subject,
            subject=subject,
            details={"webauthn_id": passkey.id, "name": passkey.name, **(details or {})},
            clock=self._clock,
        )

    def record_login(
        self, scope: Scope, verified: VerifiedPasskey, *, session_id: str, transport: str
    ) -> None:
        """``identity:login:succeeded`` for a passwordless login that started a session."""
        subject = f"user:{verified.user_id}"
        record_from_scope(
            self._audit,
            scope,
            EventType.IDENTITY_LOGIN_SUCCEEDED,
            Outcome.SUCCESS,
            actor=subject,
            subject=subject,
            details={
                "session_id": session_id,
                "transport": transport,
                "method": verified.method.value,
                "webauthn_id": verified.passkey.id,
            },
            clock=self._clock,
        )

    def _used(self, scope: Scope, result: VerifiedPasskey, purpose: Purpose) -> None:
        self._record(
            scope,
            EventType.IDENTITY_WEBAUTHN_USED,
            result.user_id,
            result.passkey,
            {"purpose": purpose.value, "user_verified": result.user_verified},
        )

    def _failed(self, scope: Scope, exc: WebAuthnError, attempt: _Attempt) -> None:
        details: dict[str, Any] = {"purpose": attempt.purpose.value, "code": exc.code}
        user_id = attempt.user_id
        if attempt.passkey is not None:
            details["webauthn_id"] = attempt.passkey.id
            user_id = attempt.passkey.user_id
        record_from_scope(
            self._audit,
            scope,
            EventType.IDENTITY_WEBAUTHN_FAILED,
            Outcome.FAILURE,
            subject=f"user:{user_id}" if user_id else None,
            reason=rejected(exc).value,
            details=details,
            clock=self._clock,
        )
