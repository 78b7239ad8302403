"""The authorization service: the facade over the store, the per-process tuple index, the
engine and the decision log (see :mod:`bastion.authz.service._core`).

    authz = build_authz(settings.authz, database=database, audit=audit, clock=clock)
    outcome = await authz.check(store_id, CheckRequest("document:1", "viewer", "user:anne"),
                                consistency=Consistency.HIGHER_CONSISTENCY, info=RequestInfo())
"""

from __future__ import annotations

from bastion.audit.interfaces import AuditRecorder
from bastion.authz.service._core import AuthzService
from bastion.authz.service._decisions import Decision, DecisionLog
from bastion.authz.service._index import Consistency, IndexCache
from bastion.authz.service._types import CheckOutcome, CheckRequest, RequestInfo
from bastion.authz.settings import AuthzSettings
from bastion.authz.store import SqlAuthzStore
from bastion.clock import Clock
from bastion.storage import Database

__all__ = [
    "AuthzService",
    "CheckOutcome",
    "CheckRequest",
    "Consistency",
    "Decision",
    "DecisionLog",
    "IndexCache",
    "RequestInfo",
    "build_authz",
]


def build_authz(
    settings: AuthzSettings, *, database: Database, audit: AuditRecorder, clock: Clock
) -> AuthzService:
    """The service of one process, configured by ``settings``."""
    store = SqlAuthzStore(database, clock=clock, max_tuples_per_write=settings.max_tuples_per_write)
    return AuthzService(
        store,
        audit=audit,
        clock=clock,
        staleness_seconds=settings.cache_staleness_seconds,
        max_cached_stores=settings.cache_max_stores,
        decision_sample_rate=settings.decision_sample_rate,
    )
