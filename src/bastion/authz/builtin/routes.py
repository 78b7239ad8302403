"""HTTP routes of just-in-time elevation, under ``/v1/admin/elevations``.

Every route needs a recent authentication (``step_up``). Any user may ask for a role
(``POST``) and see their own requests; approving, denying and seeing everyone's requests need
``can_approve_elevations``; approving or denying one's own request is refused
(``elevation_self_approval``). A grant is withdrawn early by an approver or by its holder
(``can_revoke`` on ``elevation:<id>``, the owner sent from the row as a contextual tuple; 404
to anyone else). Each permission is declared with the SDK (:mod:`.enforcement`) and decided by
the engine, recorded in the decision log.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Literal, Self

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from bastion.authz.builtin.elevations import Elevation, ElevationService
from bastion.authz.builtin.enforcement import (
    SYSTEM_ID,
    SYSTEM_TYPE,
    on_system,
    system_authorizer,
)
from bastion.authz.builtin.errors import ElevationNotFound
from bastion.authz.builtin.model import SYSTEM_OBJECT, Permission, Role
from bastion.authz.builtin.models import REASON_CHARS
from bastion.authz.tuples import Tuple
from bastion.http.responses import problems
from bastion.identity.sessions.auth import Principal

__all__ = ["include"]

PrincipalDependency = Callable[..., Awaitable[Principal]]
ELEVATION_TYPE = "elevation"
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
    # The step-up dependency is the principal: the permission checks below resolve it (FastAPI
    # runs it once per request), so a recent authentication comes before any decision.
    authz = system_authorizer(elevations.system, step_up)
    approver = on_system(authz, Permission.APPROVE_ELEVATIONS)

    async def owned(_: Request, elevation_id: str) -> list[Tuple]:
        """The request's owner, from its row (none for an unknown id: a stranger's answer is
        the same whether or not it exists)."""
        try:
            elevation = await elevations.get(elevation_id)
        except ElevationNotFound:
            return []
        obj = f"{ELEVATION_TYPE}:{elevation_id}"
        return [
            Tuple(obj, "owner", f"user:{elevation.user_id}"),
            Tuple(obj, "system", SYSTEM_OBJECT),
        ]

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
        may_approve = await authz.allows(
            request, who, Permission.APPROVE_ELEVATIONS.value, SYSTEM_TYPE, SYSTEM_ID
        )
        found = await elevations.list(
            user_id=None if may_approve else who.user_id, status=status_filter
        )
        return ElevationsOut(elevations=[ElevationOut.of(e) for e in found])

    @router.post(
        "/{elevation_id}/approve",
        response_model=ElevationOut,
        summary="Approve.",
        dependencies=[Depends(approver)],
    )
    async def approve(
        request: Request, elevation_id: str = ElevationId, who: Principal = Depends(step_up)
    ) -> ElevationOut:
        approved = await elevations.approve(elevation_id, who.user_id, scope=request.scope)
        return ElevationOut.of(approved)

    @router.post(
        "/{elevation_id}/deny",
        response_model=ElevationOut,
        summary="Deny.",
        dependencies=[Depends(approver)],
    )
    async def deny(
        request: Request, elevation_id: str = ElevationId, who: Principal = Depends(step_up)
    ) -> ElevationOut:
        return ElevationOut.of(
            await elevations.deny(elevation_id, who.user_id, scope=request.scope)
        )

    @router.post(
        "/{elevation_id}/revoke",
        response_model=ElevationOut,
        summary="End a grant early.",
        # Its holder or an approver; anyone else gets 404 (ids are not confirmed to strangers).
        dependencies=[
            Depends(
                authz.require(
                    "can_revoke",
                    ELEVATION_TYPE,
                    from_path="elevation_id",
                    hide_existence=True,
                    contextual=owned,
                )
            )
        ],
    )
    async def revoke(
        request: Request, elevation_id: str = ElevationId, who: Principal = Depends(step_up)
    ) -> ElevationOut:
        revoked = await elevations.revoke(elevation_id, who.user_id, scope=request.scope)
        return ElevationOut.of(revoked)

    app.include_router(router)
