"""Who may use the OpenFGA-compatible API: deny by default.

Every route needs a Bastion access token (``Authorization: Bearer``, from ``POST /v1/sessions``).
Then:

- **administer** (create or delete a store, write a model version, write or delete tuples):
  enabled Bastion administrators only;
- **query** (get and list stores, read models, read tuples and changes, check, batch-check,
  expand, list-objects, list-users, explain): administrators, and the user ids listed in
  ``BASTION_AUTHZ__QUERY_USERS`` (service accounts of the applications that ask for decisions).

Anyone else authenticated gets 403 ``forbidden`` and an ``authz:api:forbidden`` audit event;
no credentials (or a bad token) get 401 ``unauthenticated``.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable

from fastapi import Request, Response

from bastion.audit.context import record_from_scope
from bastion.audit.events import EventType, Outcome
from bastion.audit.interfaces import AuditRecorder
from bastion.authz.api._errors import OpenFgaError
from bastion.authz.service import RequestInfo
from bastion.authz.settings import AuthzSettings
from bastion.clock import Clock
from bastion.identity.sessions.auth import Principal

__all__ = ["ApiAccess", "Permission"]

AdminCheck = Callable[[str], Awaitable[bool]]
#: The authenticated caller of a request (``IdentityServices.resolve_principal``); the
#: response, when given, receives the per-user RateLimit fields.
Resolver = Callable[[Request, Response | None], Awaitable[Principal]]


class Permission(enum.StrEnum):
    ADMINISTER = "administer"
    QUERY = "query"


class ApiAccess:
    """Builds the FastAPI dependencies that authenticate and authorize API callers.

    Each is one flat dependency (authentication, the MFA enrollment policy, then this API's
    permission), not a chain of nested ones: FastAPI resolves every level again on every
    request, which on a check cost more than the engine. These routes are not in Bastion's
    OpenAPI document, so they declare no security scheme."""

    def __init__(
        self,
        principal: Resolver,
        is_admin: AdminCheck,
        settings: AuthzSettings,
        *,
        audit: AuditRecorder,
        clock: Clock,
    ) -> None:
        self._principal = principal
        self._is_admin = is_admin
        self._query_users = frozenset(settings.query_users)
        self._audit = audit
        self._clock = clock

    async def allowed(self, who: Principal, permission: Permission) -> bool:
        """Whether ``who`` holds ``permission`` (administrators hold both)."""
        if permission is Permission.QUERY and who.user_id in self._query_users:
            return True
        return await self._is_admin(who.user_id)

    def requires(self, permission: Permission) -> Callable[..., Awaitable[Principal]]:
        """A dependency returning the caller when allowed; raises 401/403 OpenFGA errors."""

        resolve = self._principal

        async def authorized(request: Request, response: Response) -> Principal:
            who = await resolve(request, response)
            await self._authorize(request, who, permission)
            return who

        return authorized

    def requires_info(self, permission: Permission) -> Callable[..., Awaitable[RequestInfo]]:
        """:meth:`requires` answering what the audit trail records of the request (its scope
        and the caller), for the routes that change something or log a decision."""

        resolve = self._principal

        async def authorized(request: Request, response: Response) -> RequestInfo:
            who = await resolve(request, response)
            await self._authorize(request, who, permission)
            return RequestInfo(scope=request.scope, actor=who.subject)

        return authorized

    def decision_caller(
        self, permission: Permission
    ) -> Callable[[Request], Awaitable[RequestInfo]]:
        """:meth:`requires_info` for the check and explain routes, which answer without the
        dependency's sub-response (as their FastAPI routes did: an endpoint returning a
        ``Response`` drops it): the caller is resolved without one, so the per-user budget is
        still taken (429 when spent) but its RateLimit fields, which no answer would carry,
        are not built. A caller named in ``query_users`` is admitted without a further
        await."""

        resolve = self._principal
        query_users = self._query_users if permission is Permission.QUERY else frozenset()

        async def caller(request: Request) -> RequestInfo:
            who = await resolve(request, None)
            if who.user_id not in query_users:
                await self._authorize(request, who, permission)
            return RequestInfo(scope=request.scope, actor=who.subject)

        return caller

    async def _authorize(self, request: Request, who: Principal, permission: Permission) -> None:
        if await self.allowed(who, permission):
            return
        record_from_scope(
            self._audit,
            request.scope,
            EventType.AUTHZ_API_FORBIDDEN,
            Outcome.FAILURE,
            actor=who.subject,
            subject=request.url.path[:255],
            reason=f"missing_{permission.value}",
            clock=self._clock,
        )
        raise OpenFgaError(403, "forbidden", "the caller may not use this operation")
