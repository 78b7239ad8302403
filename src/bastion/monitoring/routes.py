"""HTTP routes of monitoring: the dead-letter list, for administrators only.

``GET /v1/admin/alerts/dead-letters?limit=50&before=<ISO time>``: alerts no webhook accepted,
newest first (``next_before`` pages back in time).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Query
from pydantic import AwareDatetime, BaseModel

from bastion.authz.builtin.enforcement import on_system, system_authorizer
from bastion.authz.builtin.model import Permission
from bastion.http.responses import problems
from bastion.identity.admin.services import AdminService
from bastion.identity.sessions.auth import Principal
from bastion.monitoring.deadletters import MAX_LIST
from bastion.monitoring.interfaces import DeadLetter, DeadLetterStore

__all__ = ["include"]


class DeadLetterOut(BaseModel):
    id: str
    alert_id: str
    channel: str
    destination: str
    detector: str
    severity: str
    attempts: int
    last_error: str
    created_at: datetime
    alert: dict[str, Any]

    @classmethod
    def of(cls, letter: DeadLetter) -> DeadLetterOut:
        return cls(
            id=letter.id,
            alert_id=letter.alert_id,
            channel=letter.channel,
            destination=letter.destination,
            detector=letter.detector,
            severity=letter.severity,
            attempts=letter.attempts,
            last_error=letter.last_error,
            created_at=letter.created_at,
            alert=letter.payload,
        )


class DeadLettersOut(BaseModel):
    dead_letters: list[DeadLetterOut]
    next_before: datetime | None


def include(
    app: FastAPI,
    dead_letters: DeadLetterStore,
    admin: AdminService,
    principal: Callable[..., Awaitable[Principal]],
    step_up: Callable[..., Awaitable[Principal]],
) -> None:
    """Mount the admin routes: ``can_administer`` of the built-in model, declared with the SDK
    and decided by the engine (403 ``forbidden``), then, like every admin operation, a recent
    authentication (``step_up``, 401 ``step_up_required``)."""
    authz = system_authorizer(admin.authorizer, principal)
    router = APIRouter(
        prefix="/v1/admin/alerts",
        tags=["admin"],
        dependencies=[Depends(on_system(authz, Permission.ADMINISTER)), Depends(step_up)],
        responses=problems(401, 403, 422, 503),
    )

    @router.get(
        "/dead-letters",
        response_model=DeadLettersOut,
        summary="Alerts no webhook accepted after every retry, newest first.",
    )
    async def list_dead_letters(
        limit: int = Query(default=50, ge=1, le=MAX_LIST),
        before: AwareDatetime | None = Query(default=None),
    ) -> DeadLettersOut:
        found = await dead_letters.list(limit=limit, before=before)
        next_before = found[-1].created_at if len(found) == limit else None
        return DeadLettersOut(
            dead_letters=[DeadLetterOut.of(x) for x in found], next_before=next_before
        )

    app.include_router(router)
