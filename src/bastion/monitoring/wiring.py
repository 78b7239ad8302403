"""Builds the monitoring pipeline from settings: the one place that picks the counter store
(memory, or the rate limiter's Redis so every worker shares the counters) and subscribes the
detectors and the security metrics to the audit trail."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from bastion.audit.interfaces import AuditRecorder, AuditSubscriber
from bastion.clock import Clock
from bastion.config.errors import ConfigError
from bastion.config.secrets import SecretStr
from bastion.crypto import Keyring
from bastion.crypto.keyring import KeyPurpose
from bastion.identity.mail.services import Outbox
from bastion.monitoring.counters import MemoryCounters, RedisCounters
from bastion.monitoring.deadletters import DatabaseDeadLetters
from bastion.monitoring.detectors import build_detectors
from bastion.monitoring.email import EmailAlerts, SignInNotifier
from bastion.monitoring.interfaces import CounterStore
from bastion.monitoring.metrics import SecurityMetrics
from bastion.monitoring.services import AlertDispatcher, DetectorEngine
from bastion.monitoring.settings import MonitoringSettings
from bastion.monitoring.webhooks import WebhookSender
from bastion.outbound import OutboundClient, OutboundSettings
from bastion.protections.ratelimit.settings import RateLimitSettings
from bastion.storage import Database


@dataclass
class Monitoring:
    settings: MonitoringSettings
    metrics: SecurityMetrics
    dead_letters: DatabaseDeadLetters
    dispatcher: AlertDispatcher
    engine: DetectorEngine | None
    outbound: OutboundClient
    counters: CounterStore
    redis: RedisCounters | None = None

    async def start(self) -> None:
        if self.engine is not None:
            await self.engine.start()

    async def aclose(self) -> None:
        if self.engine is not None:
            await self.engine.aclose()
        await self.dispatcher.aclose()
        await self.outbound.aclose()
        if self.redis is not None:
            await self.redis.aclose()


def _counters(
    settings: MonitoringSettings, ratelimit: RateLimitSettings
) -> tuple[CounterStore, RedisCounters | None]:
    use_redis = settings.counters == "redis" or (
        settings.counters == "auto" and ratelimit.storage == "redis"
    )
    if not use_redis:
        return MemoryCounters(max_keys=settings.memory_max_keys), None
    if ratelimit.redis_url is None:
        raise ConfigError("BASTION_MONITORING__COUNTERS=redis needs BASTION_RATELIMIT__REDIS_URL")
    redis = RedisCounters.from_url(ratelimit.redis_url.get_secret_value())
    return redis, redis


def build_monitoring(
    settings: MonitoringSettings,
    *,
    outbound: OutboundSettings,
    ratelimit: RateLimitSettings,
    database: Database,
    audit: AuditRecorder,
    subscribe: Callable[[AuditSubscriber], None],
    registry: CollectorRegistry,
    outbox: Outbox,
    secret_key: SecretStr,
    clock: Clock,
) -> Monitoring:
    metrics = SecurityMetrics()
    registry.register(metrics)
    subscribe(metrics)
    client = OutboundClient(outbound)
    dead_letters = DatabaseDeadLetters(database, clock=clock)
    sender = WebhookSender(
        client,
        dead_letters,
        audit=audit,
        clock=clock,
        max_attempts=settings.webhook_max_attempts,
        base_delay=settings.webhook_base_delay_seconds,
        max_delay=settings.webhook_max_delay_seconds,
    )
    dispatcher = AlertDispatcher(
        audit,
        metrics,
        webhooks=settings.webhooks,
        sender=sender,
        email=EmailAlerts(database, outbox, settings.alert_emails),
        email_min_severity=settings.email_min_severity,
        notifier=SignInNotifier(database, outbox),
    )
    counters, redis = _counters(settings, ratelimit)
    engine = None
    if settings.detectors_enabled:
        key = Keyring(secret_key).derive(KeyPurpose.MONITORING)
        engine = DetectorEngine(
            build_detectors(settings, counters, key),
            counters,
            dispatcher,
            metrics,
            cooldown_seconds=settings.cooldown_seconds,
            queue_size=settings.queue_size,
        )
        subscribe(engine)
    return Monitoring(
        settings=settings,
        metrics=metrics,
        dead_letters=dead_letters,
        dispatcher=dispatcher,
        engine=engine,
        outbound=client,
        counters=counters,
        redis=redis,
    )
