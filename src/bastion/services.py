"""The service container: everything a request handler may need, built once per process."""

from __future__ import annotations

from dataclasses import dataclass, field

from bastion.audit.interfaces import AuditRecorder
from bastion.audit.recorder import QueueAuditRecorder
from bastion.audit.sinks import DatabaseSink, LogSink
from bastion.clock import Clock, SystemClock
from bastion.config.secret_key import resolve_secret_key
from bastion.config.secrets import SecretStr
from bastion.config.settings import Settings
from bastion.identity.services import IdentityServices, build_identity
from bastion.identity.setup_token import SetupTokenService
from bastion.identity.tokens.services import AccessTokenService
from bastion.ops.metrics import Metrics
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
    clock: Clock = field(default_factory=SystemClock)

    @property
    def access_tokens(self) -> AccessTokenService:
        return self.identity.access_tokens

    async def start(self) -> None:
        await self.audit.start()
        await self.identity.start()

    async def aclose(self) -> None:
        # Identity first (pending jobs queue mails and events), then flush audit events before
        # the database goes away: nothing recorded is lost on shutdown.
        await self.identity.aclose()
        await self.audit.aclose()
        await self.rate_limiting.aclose()
        await self.database.dispose()


def build_services(settings: Settings, *, clock: Clock | None = None) -> Services:
    clock = clock or SystemClock()
    database = Database.from_settings(settings)
    metrics = Metrics()
    audit = QueueAuditRecorder(
        sinks=[DatabaseSink(database), LogSink()],
        queue_size=settings.audit_queue_size,
        batch_size=settings.audit_batch_size,
    )
    metrics.watch_audit(audit)
    rate_limiting = build_rate_limiting(
        settings.ratelimit, audit=audit, clock=clock, registry=metrics.registry
    )
    secret_key = resolve_secret_key(settings)
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
    )
    return Services(
        settings=settings,
        secret_key=secret_key,
        database=database,
        audit=audit,
        metrics=metrics,
        setup_tokens=setup_tokens,
        rate_limiting=rate_limiting,
        identity=identity,
        clock=clock,
    )
