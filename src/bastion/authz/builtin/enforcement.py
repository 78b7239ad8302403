"""Bastion's own routes enforce their permissions with the SDK (:mod:`bastion.sdk.authz`).

Every administration route declares what it needs as an SDK dependency over the built-in model,
exactly as a service using Bastion would::

    authz = system_authorizer(system, principal)
    router = APIRouter(dependencies=[Depends(on_system(authz, Permission.READ_USERS)),
                                     Depends(step_up)])

The checker is :class:`~bastion.authz.builtin.system.SystemAuthz` itself (deny by default, a
disabled account holds nothing, every decision in the decision log, time-limited grants decided
with the injected clock), so the SDK adds no second policy. A route-table test asserts that
every ``/v1/admin`` route depends on such a ``require`` (:func:`bastion.sdk.authz.requirement_of`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from weakref import WeakKeyDictionary

from bastion.authz.builtin.model import SYSTEM_OBJECT, Permission
from bastion.authz.builtin.system import SystemAuthz
from bastion.sdk.authz import Authorizer, Decision

__all__ = ["SYSTEM_ID", "SYSTEM_TYPE", "on_system", "system_authorizer"]

SYSTEM_TYPE, SYSTEM_ID = SYSTEM_OBJECT.split(":")
PrincipalDependency = Callable[..., Awaitable[Any]]

# One Authorizer per (system, principal dependency): every router sharing a principal shares
# the Authorizer (and FastAPI resolves the principal once per request).
_authorizers: WeakKeyDictionary[SystemAuthz, dict[PrincipalDependency, Authorizer]] = (
    WeakKeyDictionary()
)


def system_authorizer(system: object, principal: PrincipalDependency) -> Authorizer:
    """The SDK :class:`Authorizer` of Bastion's administration for routes authenticated by
    ``principal``. ``system`` is the wired :class:`SystemAuthz` (``AdminService.authorizer``).

    Raises ``TypeError`` when it is not one: routes must not be mounted unwired (they would
    otherwise be decided by something else than the engine)."""
    if not isinstance(system, SystemAuthz):
        raise TypeError("mount administration routes after wiring SystemAuthz (services.py)")
    per_principal = _authorizers.setdefault(system, {})
    if principal not in per_principal:
        per_principal[principal] = Authorizer(system, principal=principal)
    return per_principal[principal]


def on_system(authz: Authorizer, permission: Permission) -> Callable[..., Awaitable[Decision]]:
    """A dependency demanding ``permission`` on ``system:bastion`` (403 ``forbidden``)."""
    return authz.require(permission.value, SYSTEM_TYPE, object_id=SYSTEM_ID)
