"""Bastion's own administration on its authorization engine: the built-in model
(:mod:`.model`), role decisions (:mod:`.system`) and just-in-time elevation
(:mod:`.elevations`, HTTP in :mod:`.routes`).

    admin = build_system_admin(settings.authz, authz=authz, database=database, audit=audit,
                               clock=clock)
    await admin.start()          # reserved store and built-in model, idempotently
    await admin.system.allowed(user_id, Permission.READ_AUDIT, scope=request.scope)
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from bastion.audit.interfaces import AuditRecorder
from bastion.authz.builtin.elevations import ElevationService
from bastion.authz.builtin.model import Permission, Role
from bastion.authz.builtin.system import SystemAuthz
from bastion.authz.service import AuthzService
from bastion.authz.settings import AuthzSettings
from bastion.clock import Clock
from bastion.logging import get_logger
from bastion.storage import Database
from bastion.storage.errors import StorageError

__all__ = [
    "ElevationService",
    "Permission",
    "Role",
    "SystemAdministration",
    "SystemAuthz",
    "build_system_admin",
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
