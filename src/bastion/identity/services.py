"""The identity domain's services, built once per process from the settings.

:func:`build_identity` is the one place that picks implementations: the mailer by the
``mailer`` setting, the signing-key store (database), the backoff store (passed in: the
rate-limiting store when one is configured, else a per-process memory store).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.exc import SQLAlchemyError

from bastion.audit.interfaces import AuditRecorder
from bastion.clock import Clock
from bastion.config.secrets import SecretStr
from bastion.config.settings import Settings
from bastion.crypto import EnvelopeCipher, KeyPurpose, Keyring
from bastion.identity.accounts.guard import CredentialGuard
from bastion.identity.accounts.services import AccountService
from bastion.identity.admin.services import AdminService
from bastion.identity.cleanup import Cleanup
from bastion.identity.jobs import BackgroundJobs
from bastion.identity.mail.mailers import mailer_from_settings
from bastion.identity.mail.services import Outbox
from bastion.identity.mfa.services import MfaService
from bastion.identity.mfa.stepup import (
    EnrollmentPolicy,
    PrincipalDependency,
    PrincipalResolver,
    StepUpGuard,
    enforcing_principal,
    principal_resolver,
    step_up_dependency,
)
from bastion.identity.mfa.webauthn import WebAuthnService, build_webauthn
from bastion.identity.mfa.webauthn.factor import PasskeyFactor
from bastion.identity.passwords import PasswordService
from bastion.identity.sessions.auth import Authenticator
from bastion.identity.sessions.login import LoginService
from bastion.identity.sessions.revocation import RevocationCache
from bastion.identity.sessions.services import SessionService
from bastion.identity.sessions.transport import CookieSettings, CsrfProtection
from bastion.identity.setup_token import SetupTokenService
from bastion.identity.tokens.rotation import SigningKeyManager
from bastion.identity.tokens.services import AccessTokenService
from bastion.identity.tokens.sqlstore import DatabaseKeyStore
from bastion.logging import get_logger
from bastion.protections.ratelimit.backoff import BackoffPolicy
from bastion.protections.ratelimit.interfaces import BackoffStore, ticker_from_clock
from bastion.protections.ratelimit.memory import MemoryStore
from bastion.protections.ratelimit.services import RateLimiter
from bastion.storage import Database
from bastion.storage.errors import StorageError

__all__ = ["IdentityServices", "build_identity"]

logger = get_logger("bastion.identity")


@dataclass
class IdentityServices:
    settings: Settings
    passwords: PasswordService
    access_tokens: AccessTokenService
    signing: SigningKeyManager
    outbox: Outbox
    revocations: RevocationCache
    sessions: SessionService
    guard: CredentialGuard
    accounts: AccountService
    login: LoginService
    admin: AdminService
    authenticator: Authenticator
    csrf: CsrfProtection
    cookies: CookieSettings
    jobs: BackgroundJobs
    #: Deletes ended sessions, tokens and mails (every ``cleanup_interval_seconds``).
    cleanup: Cleanup
    #: Second factors, login challenges, step-up (see bastion.identity.mfa).
    mfa: MfaService
    #: The one authentication dependency for routes: the authenticator plus the MFA
    #: enrollment policy. ``step_up``: the same, plus a recent authentication (sensitive
    #: operations; see bastion.identity.mfa.stepup).
    principal: PrincipalDependency
    step_up: PrincipalDependency
    #: What ``principal`` runs, as a plain ``(request, response)`` coroutine function (for a
    #: route's own single dependency, e.g. the OpenFGA-compatible API's).
    resolve_principal: PrincipalResolver
    enrollment: EnrollmentPolicy
    #: Passkeys: ceremonies and credentials (see bastion.identity.mfa.webauthn).
    webauthn: WebAuthnService

    async def start(self) -> None:
        try:
            await self.signing.ensure()
        except (SQLAlchemyError, StorageError, OSError) as exc:
            # Not fatal here: readiness reports the database, and the first login retries.
            logger.warning("no signing key at startup", error=type(exc).__name__)
        await self.outbox.start()
        if self.settings.cleanup_interval_seconds:
            self.jobs.every(self.settings.cleanup_interval_seconds, self._cleanup, "cleanup")

    async def _cleanup(self) -> None:
        await self.cleanup.run()

    async def aclose(self) -> None:
        # Jobs first: they queue mails the outbox then delivers before it stops.
        await self.jobs.aclose()
        await self.outbox.aclose()
        await self.passwords.aclose()


def _backoff_policies(settings: Settings) -> tuple[BackoffPolicy, BackoffPolicy]:
    account = BackoffPolicy(
        name="login-account",
        threshold=settings.login_backoff_threshold,
        base_delay=settings.login_backoff_base_delay_seconds,
        max_delay=settings.login_backoff_max_delay_seconds,
        half_life=settings.login_backoff_half_life_seconds,
    )
    ip = BackoffPolicy(
        name="login-ip",
        threshold=settings.login_ip_backoff_threshold,
        base_delay=settings.login_backoff_base_delay_seconds,
        max_delay=settings.login_backoff_max_delay_seconds,
        half_life=settings.login_backoff_half_life_seconds,
    )
    return account, ip


def build_identity(
    settings: Settings,
    *,
    database: Database,
    audit: AuditRecorder,
    clock: Clock,
    secret_key: SecretStr,
    setup_tokens: SetupTokenService,
    backoff_store: BackoffStore | None = None,
    limiter: RateLimiter | None = None,
) -> IdentityServices:
    keyring = Keyring(secret_key)
    cipher = EnvelopeCipher.from_keyring(keyring)
    token_settings = settings.access_tokens
    passwords = PasswordService(settings.passwords)
    keystore = DatabaseKeyStore(database, cipher, clock, grace=token_settings.verification_grace)
    access_tokens = AccessTokenService(token_settings, keystore, clock)
    signing = SigningKeyManager(access_tokens, audit=audit, clock=clock)
    outbox = Outbox(database, mailer_from_settings(settings), cipher, clock=clock, audit=audit)
    bound = settings.revocation_bound_seconds
    revocations = RevocationCache(
        database,
        clock,
        bound_seconds=bound,
        window=token_settings.verification_grace + timedelta(seconds=bound),
    )
    sessions = SessionService(
        database,
        access_tokens,
        cipher,
        revocations,
        signing=signing,
        audit=audit,
        clock=clock,
        idle=timedelta(seconds=settings.session_idle_seconds),
        absolute=timedelta(seconds=settings.session_absolute_seconds),
        refresh_grace=timedelta(seconds=settings.refresh_grace_seconds),
    )
    account_policy, ip_policy = _backoff_policies(settings)
    guard = CredentialGuard(
        backoff_store or MemoryStore(ticker=ticker_from_clock(clock)),
        account_policy=account_policy,
        ip_policy=ip_policy,
        audit=audit,
        clock=clock,
    )
    jobs = BackgroundJobs()
    accounts = AccountService(
        database,
        passwords=passwords,
        outbox=outbox,
        sessions=sessions,
        guard=guard,
        setup_tokens=setup_tokens,
        jobs=jobs,
        audit=audit,
        clock=clock,
        verification_ttl=timedelta(seconds=settings.email_verification_ttl_seconds),
        reset_ttl=timedelta(seconds=settings.password_reset_ttl_seconds),
    )
    mfa = MfaService(
        database,
        settings=settings.mfa,
        cipher=cipher,
        sessions=sessions,
        outbox=outbox,
        guard=guard,
        backoff_store=guard.account.store,
        audit=audit,
        clock=clock,
    )
    webauthn = build_webauthn(settings, database=database, audit=audit, clock=clock)
    mfa.register_factor_source(PasskeyFactor(webauthn.credentials))
    login = LoginService(
        database,
        passwords=passwords,
        sessions=sessions,
        guard=guard,
        audit=audit,
        clock=clock,
        second_factor=mfa,
    )
    trusted = [
        *settings.cors_allow_origins,
        *([settings.public_url] if settings.public_url else []),
    ]
    csrf = CsrfProtection(keyring.derive(KeyPurpose.CSRF), trusted_origins=trusted)
    authenticator = Authenticator(
        access_tokens,
        revocations,
        csrf,
        audit=audit,
        clock=clock,
        limiter=limiter,
        emit_headers=settings.ratelimit.emit_headers,
    )
    enrollment = EnrollmentPolicy(mfa)
    resolve_principal = principal_resolver(authenticator, enrollment)
    principal = enforcing_principal(resolve_principal)
    cookies = CookieSettings(
        secure=settings.cookie_secure,
        access_max_age=token_settings.ttl_seconds,
        session_max_age=settings.session_absolute_seconds,
    )
    return IdentityServices(
        settings=settings,
        passwords=passwords,
        access_tokens=access_tokens,
        signing=signing,
        outbox=outbox,
        revocations=revocations,
        sessions=sessions,
        guard=guard,
        accounts=accounts,
        login=login,
        admin=AdminService(accounts, sessions, guard, audit=audit, clock=clock),
        authenticator=authenticator,
        csrf=csrf,
        cookies=cookies,
        jobs=jobs,
        cleanup=Cleanup(
            database,
            clock,
            retention=timedelta(seconds=settings.cleanup_retention_seconds),
            idle=timedelta(seconds=settings.session_idle_seconds),
            revocation_window=token_settings.verification_grace + timedelta(seconds=bound),
        ),
        mfa=mfa,
        principal=principal,
        step_up=step_up_dependency(StepUpGuard(mfa), principal),
        resolve_principal=resolve_principal,
        enrollment=enrollment,
        webauthn=webauthn,
    )
