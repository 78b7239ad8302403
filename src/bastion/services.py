"""The service container: everything a request handler may need, built once per process."""

from __future__ import annotations

from dataclasses import dataclass, field

from bastion.audit.chain import ChainKeys
from bastion.audit.interfaces import AuditRecorder
from bastion.audit.recorder import QueueAuditRecorder
from bastion.audit.services import AuditLog, build_audit_log, export_sinks
from bastion.audit.sinks import DatabaseSink
from bastion.authz.builtin import SystemAdministration, build_system_admin
from bastion.authz.service import AuthzService, build_authz
from bastion.clock import Clock, SystemClock
from bastion.config.secret_key import resolve_secret_key
from bastion.config.secrets import SecretStr
from bastion.config.settings import Settings
from bastion.crypto import Keyring
from bastion.identity.services import IdentityServices, build_identity
from bastion.identity.setup_token import SetupTokenService
from bastion.identity.tokens.services import AccessTokenService
from bastion.monitoring.wiring import Monitoring, build_monitoring
from bastion.ops.metrics import Metrics
from bastion.privacy import PrivacyService
from bastion.privacy.settings_changes import SettingsChanges
from bastion.protections.ratelimit.wiring import RateLimiting, build_rate_limiting
from bastion.storage import Database


@dataclass
class Services:
    settings: Settings
    secret_key: SecretStr
    database: Database
    audit: AuditRecorder
    metrics: Metrics
    setup_tokens: SetupTokenService
    rate_limiting: RateLimiting
    identity: IdentityServices
    authz: AuthzService
    system_admin: SystemAdministration
    audit_log: AuditLog
    monitoring: Monitoring
    privacy: PrivacyService
    clock: Clock = field(default_factory=SystemClock)

    @property
    def access_tokens(self) -> AccessTokenService:
        return self.identity.access_tokens

    async def start(self) -> None:
        await self.audit.start()
        await self.privacy.start()
        await self.system_admin.start()
        await self.identity.start()
        if self.settings.cleanup_interval_seconds:
            # Grants end by themselves; this records ends that no check or call observed.
            self.identity.jobs.every(
                self.settings.cleanup_interval_seconds, self.system_admin.sweep, "elevations"
            )
        await self.audit_log.start()
        await self.monitoring.start()

    async def aclose(self) -> None:
        # Identity first (pending jobs queue mails and events), then flush audit events before
        # the database goes away: nothing recorded is lost on shutdown.
        await self.monitoring.aclose()
        await self.authz.aclose()  # background refreshes of the tuple index and model ids
        await self.audit_log.aclose()
        await self.identity.aclose()
        await self.audit.aclose()
        await self.rate_limiting.aclose()
        await self.database.dispose()


def build_services(settings: Settings, *, clock: Clock | None = None) -> Services:
    clock = clock or SystemClock()
    database = Database.from_settings(settings)
    metrics = Metrics()
    secret_key = resolve_secret_key(settings)
    keyring = Keyring(secret_key)
    chain_keys = ChainKeys.from_keyring(keyring)
    audit_sink = DatabaseSink(database, chain_keys)
    audit = QueueAuditRecorder(
        sinks=[audit_sink, *export_sinks(settings)],
        queue_size=settings.audit_queue_size,
        batch_size=settings.audit_batch_size,
    )
    metrics.watch_audit(audit)
    rate_limiting = build_rate_limiting(
        settings.ratelimit, audit=audit, clock=clock, registry=metrics.registry
    )
    setup_tokens = SetupTokenService(
        database, clock=clock, ttl_seconds=settings.setup_token_ttl_seconds, audit=audit
    )
    identity = build_identity(
        settings,
        database=database,
        audit=audit,
        clock=clock,
        secret_key=secret_key,
        setup_tokens=setup_tokens,
        # Shared by every worker when the rate limits use Redis; otherwise a per-process store
        # on the injected clock.
        backoff_store=rate_limiting.store if settings.ratelimit.storage == "redis" else None,
        # Per-user limits are counted once authentication names the user.
        limiter=rate_limiting.limiter,
    )
    monitoring = build_monitoring(
        settings.monitoring,
        outbound=settings.outbound,
        ratelimit=settings.ratelimit,
        database=database,
        audit=audit,
        subscribe=audit_sink.subscribe,
        registry=metrics.registry,
        outbox=identity.outbox,
        secret_key=secret_key,
        clock=clock,
    )
    authz = build_authz(settings.authz, database=database, audit=audit, clock=clock)
    system_admin = build_system_admin(
        settings.authz, authz=authz, database=database, audit=audit, clock=clock
    )
    # Administration decisions come from the engine; the first administrator gets the role.
    identity.admin.authorizer = system_admin.system
    identity.accounts.on_admin_created = system_admin.system.grant_first_admin
    return Services(
        settings=settings,
        secret_key=secret_key,
        database=database,
        audit=audit,
        metrics=metrics,
        setup_tokens=setup_tokens,
        rate_limiting=rate_limiting,
        identity=identity,
        authz=authz,
        system_admin=system_admin,
        audit_log=build_audit_log(
            settings,
            database=database,
            keys=chain_keys,
            sink=audit_sink,
            signing_key=identity.signing.ensure,
            recorder=audit,
            clock=clock,
            keyring=keyring,
        ),
        monitoring=monitoring,
        privacy=PrivacyService(
            database,
            audit=audit,
            clock=clock,
            sessions=identity.sessions,
            enrollment=identity.enrollment,
            settings_changes=SettingsChanges(
                settings, database=database, audit=audit, clock=clock, keyring=keyring
            ),
        ),
        clock=clock,
    )
