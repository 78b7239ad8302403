"""Bastion's own administration on its authorization engine: the built-in model
(:mod:`.model`), role decisions (:mod:`.system`) and just-in-time elevation
(:mod:`.elevations`, HTTP in :mod:`.routes`).

    admin = build_system_admin(settings.authz, authz=authz, database=database, audit=audit,
                               clock=clock)
    await admin.start()          # reserved store and built-in model, idempotently
    authz = admin.authorizer(principal)   # the SDK Authorizer the admin routes enforce with
    router = APIRouter(dependencies=[Depends(on_system(authz, Permission.READ_AUDIT))])
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from bastion.audit.interfaces import AuditRecorder
from bastion.authz.builtin.elevations import ElevationService
from bastion.authz.builtin.enforcement import on_system, system_authorizer
from bastion.authz.builtin.model import Permission, Role
from bastion.authz.builtin.system import SystemAuthz
from bastion.authz.service import AuthzService
from bastion.authz.settings import AuthzSettings
from bastion.clock import Clock
from bastion.logging import get_logger
from bastion.sdk.authz import Authorizer
from bastion.storage import Database
from bastion.storage.errors import StorageError

__all__ = [
    "ElevationService",
    "Permission",
    "Role",
    "SystemAdministration",
    "SystemAuthz",
    "build_system_admin",
    "on_system",
]

logger = get_logger("bastion.authz")


@dataclass
class SystemAdministration:
    system: SystemAuthz
    elevations: ElevationService

    async def start(self) -> None:
        """Ensure the reserved store and model, record the ends nobody observed. Not fatal
        when the database is unreachable: the first decision retries (and fails closed)."""
        try:
            await self.system.ensure()
            await self.elevations.sweep()
        except (SQLAlchemyError, StorageError, OSError) as exc:
            logger.warning("system authorization not ready at startup", error=type(exc).__name__)

    def authorizer(self, principal: Callable[..., Awaitable[Any]]) -> Authorizer:
        """The SDK :class:`Authorizer` of Bastion's own routes authenticated by ``principal``
        (one per principal dependency; see :mod:`.enforcement`)."""
        return system_authorizer(self.system, principal)

    async def sweep(self) -> None:
        """The periodic job: record ended grants and requests (see elevations.py)."""
        await self.elevations.sweep()


def build_system_admin(
    settings: AuthzSettings,
    *,
    authz: AuthzService,
    database: Database,
    audit: AuditRecorder,
    clock: Clock,
) -> SystemAdministration:
    system = SystemAuthz(authz, database, audit=audit, clock=clock)
    return SystemAdministration(system, ElevationService(system, settings, clock=clock))
