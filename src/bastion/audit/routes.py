"""``GET /v1/admin/audit/events``: administrators search the audit trail.

Deny by default: the router needs the ``can_read_audit`` permission of Bastion's built-in
authorization model, declared with the SDK's ``require`` (administrators and security auditors;
403 ``forbidden`` for anyone else authenticated) and step-up (a recent authentication), like
the account administration API.
Every search is itself recorded (``audit:events:searched``, the administrator as actor), so
reading the trail leaves a trace in it. Users read their own events at ``/v1/account/events``
(:mod:`bastion.identity.accounts.events`), never through this route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from pydantic import BaseModel, IPvAnyAddress

from bastion.audit.context import record_from_scope
from bastion.audit.events import EventType, Outcome
from bastion.audit.interfaces import AuditRecorder
from bastion.audit.query import DEFAULT_PAGE, MAX_CURSOR_CHARS, MAX_PAGE, EventFilter, EventRecord
from bastion.audit.services import AuditLog
from bastion.authz.builtin.enforcement import on_system
from bastion.authz.builtin.model import Permission
from bastion.http.responses import problems
from bastion.identity.sessions.auth import Principal
from bastion.sdk.authz import Authorizer

__all__ = ["include"]

#: Actors, subjects and request ids are printable ASCII without spaces (``user:<id>``): other
#: text cannot match a stored value, and a NUL must never reach the database driver.
_REFERENCE = r"^[\x21-\x7e]{1,255}$"
_REQUEST_ID = r"^[\x21-\x7e]{1,128}$"
_CURSOR = rf"^[A-Za-z0-9_-]{{1,{MAX_CURSOR_CHARS}}}$"
PrincipalDependency = Callable[..., Awaitable[Principal]]


class AuditEventOut(BaseModel):
    id: int
    seq: int | None
    time: datetime
    type: str
    outcome: str
    actor: str | None
    subject: str | None
    ip: str | None
    user_agent: str | None
    request_id: str | None
    reason: str | None
    details: dict[str, Any]

    @classmethod
    def of(cls, record: EventRecord) -> AuditEventOut:
        return cls(
            id=record.id,
            seq=record.seq,
            time=record.time,
            type=record.type,
            outcome=record.outcome,
            actor=record.actor,
            subject=record.subject,
            ip=record.client_ip,
            user_agent=record.user_agent,
            request_id=record.request_id,
            reason=record.reason,
            details=record.details,
        )


class AuditEventsOut(BaseModel):
    events: list[AuditEventOut]
    next_cursor: str | None


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def include(
    app: FastAPI,
    audit_log: AuditLog,
    recorder: AuditRecorder,
    *,
    principal: PrincipalDependency,
    step_up: PrincipalDependency,
    authorizer: Authorizer,
) -> None:
    """``authorizer``: the SDK authorizer of Bastion's administration (over the engine), which
    decides ``can_read_audit``."""
    router = APIRouter(
        prefix="/v1/admin/audit",
        tags=["admin", "audit"],
        # The permission first: a caller without it learns nothing of the step-up policy.
        dependencies=[Depends(on_system(authorizer, Permission.READ_AUDIT)), Depends(step_up)],
        responses=problems(400, 401, 403, 422, 503),
    )

    @router.get(
        "/events", response_model=AuditEventsOut, summary="Search the audit trail, newest first."
    )
    async def search_events(  # noqa: PLR0917 - one query parameter per filter
        request: Request,
        who: Principal = Depends(principal),
        since: datetime | None = Query(default=None, description="From this time (inclusive)."),
        until: datetime | None = Query(default=None, description="Before this time."),
        type: list[EventType] = Query(default=[], max_length=20),  # noqa: A002 - API name
        outcome: Outcome | None = Query(default=None),
        actor: str | None = Query(default=None, pattern=_REFERENCE),
        subject: str | None = Query(default=None, pattern=_REFERENCE),
        ip: IPvAnyAddress | None = Query(default=None),
        request_id: str | None = Query(default=None, pattern=_REQUEST_ID),
        cursor: str | None = Query(default=None, pattern=_CURSOR),
        limit: int = Query(default=DEFAULT_PAGE, ge=1, le=MAX_PAGE),
    ) -> AuditEventsOut:
        query = EventFilter(
            since=_utc(since),
            until=_utc(until),
            types=tuple(t.value for t in type),
            outcome=outcome.value if outcome else None,
            actor=actor,
            subject=subject,
            client_ip=str(ip) if ip is not None else None,
            request_id=request_id,
        )
        found, next_cursor = await audit_log.search(query, cursor=cursor, limit=limit)
        record_from_scope(
            recorder,
            request.scope,
            EventType.AUDIT_EVENTS_SEARCHED,
            Outcome.SUCCESS,
            actor=who.subject,
            subject="audit:events",
            details={"filter": query.described(), "results": len(found)},
        )
        return AuditEventsOut(events=[AuditEventOut.of(r) for r in found], next_cursor=next_cursor)

    app.include_router(router)
