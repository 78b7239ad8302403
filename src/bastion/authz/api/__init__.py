"""The OpenFGA-compatible HTTP API (``/stores/...``), authenticated with Bastion credentials.

``include(app, services)`` mounts it unless ``BASTION_AUTHZ__API_ENABLED=false``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from bastion.authz.api import routes
from bastion.authz.api.access import ApiAccess, Permission

if TYPE_CHECKING:
    from bastion.services import Services

__all__ = ["ApiAccess", "Permission", "include"]


def include(app: FastAPI, services: Services) -> None:
    settings = services.settings.authz
    if not settings.api_enabled:
        return
    identity = services.identity
    access = ApiAccess(
        identity.resolve_principal,
        identity.admin.is_admin,
        settings,
        audit=services.audit,
        clock=services.clock,
    )
    routes.include(app, services.authz, access)
