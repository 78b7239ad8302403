"""HTTP routes of just-in-time elevation, under ``/v1/admin/elevations``.

Every route needs a recent authentication (``step_up``). Any user may ask for a role
(``POST``) and see their own requests; approving, denying and seeing everyone's requests need
``can_approve_elevations`` (decided by the engine); approving or denying one's own request
is refused (``elevation_self_approval``). A grant is withdrawn early by an approver or by its
holder.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Literal, Self

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from bastion.authz.builtin.elevations import Elevation, ElevationService
from bastion.authz.builtin.errors import ElevationNotFound
from bastion.authz.builtin.model import Permission, Role
from bastion.authz.builtin.models import REASON_CHARS
from bastion.http.errors import Forbidden
from bastion.http.responses import problems
from bastion.identity.sessions.auth import Principal

__all__ = ["include"]

PrincipalDependency = Callable[..., Awaitable[Principal]]
ElevationId = Path(pattern=r"^[0-9a-f]{32}$")
StatusName = Literal["pending", "approved", "denied", "revoked", "expired"]


class ElevationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    duration_seconds: int = Field(ge=60, le=30 * 24 * 3600)
    reason: str = Field(min_length=3, max_length=REASON_CHARS)


class ElevationOut(BaseModel):
    id: str
    user_id: str
    role: str
    reason: str
    duration_seconds: int
    status: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    expires_at: datetime | None
    revoked_by: str | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, elevation: Elevation) -> Self:
        return cls.model_validate(elevation, from_attributes=True)


class ElevationsOut(BaseModel):
    elevations: list[ElevationOut]


def include(
    app: FastAPI,
    elevations: ElevationService,
    step_up: PrincipalDependency,
) -> None:
    system = elevations.system

    async def may_approve(request: Request, who: Principal) -> bool:
        return await system.allowed(who.user_id, Permission.APPROVE_ELEVATIONS, scope=request.scope)

    async def approver(request: Request, who: Principal = Depends(step_up)) -> Principal:
        if not await may_approve(request, who):
            raise Forbidden
        return who

    # Every route needs a recent authentication (step-up), as every /v1/admin route does.
    router = APIRouter(
        prefix="/v1/admin/elevations",
        tags=["admin"],
        dependencies=[Depends(step_up)],
        responses=problems(401, 403, 404, 409, 422, 429, 503),
    )

    @router.post(
        "",
        status_code=status.HTTP_201_CREATED,
        response_model=ElevationOut,
        summary="Ask for a role for a while, with a reason (another administrator decides).",
    )
    async def request_elevation(
        body: ElevationIn, request: Request, who: Principal = Depends(step_up)
    ) -> ElevationOut:
        elevation = await elevations.request(
            who.user_id,
            body.role,
            timedelta(seconds=body.duration_seconds),
            body.reason,
            scope=request.scope,
        )
        return ElevationOut.of(elevation)

    @router.get("", response_model=ElevationsOut, summary="Requests: mine, or all (approvers).")
    async def list_elevations(
        request: Request,
        status_filter: StatusName | None = Query(default=None, alias="status"),
        who: Principal = Depends(step_up),
    ) -> ElevationsOut:
        mine = None if await may_approve(request, who) else who.user_id
        found = await elevations.list(user_id=mine, status=status_filter)
        return ElevationsOut(elevations=[ElevationOut.of(e) for e in found])

    @router.post("/{elevation_id}/approve", response_model=ElevationOut, summary="Approve.")
    async def approve(
        request: Request, elevation_id: str = ElevationId, who: Principal = Depends(approver)
    ) -> ElevationOut:
        approved = await elevations.approve(elevation_id, who.user_id, scope=request.scope)
        return ElevationOut.of(approved)

    @router.post("/{elevation_id}/deny", response_model=ElevationOut, summary="Deny.")
    async def deny(
        request: Request, elevation_id: str = ElevationId, who: Principal = Depends(approver)
    ) -> ElevationOut:
        return ElevationOut.of(
            await elevations.deny(elevation_id, who.user_id, scope=request.scope)
        )

    @router.post(
        "/{elevation_id}/revoke", response_model=ElevationOut, summary="End a grant early."
    )
    async def revoke(
        request: Request, elevation_id: str = ElevationId, who: Principal = Depends(step_up)
    ) -> ElevationOut:
        elevation = await elevations.get(elevation_id)
        if elevation.user_id != who.user_id and not await may_approve(request, who):
            raise ElevationNotFound  # not confirmed to strangers
        revoked = await elevations.revoke(elevation_id, who.user_id, scope=request.scope)
        return ElevationOut.of(revoked)

    app.include_router(router)
