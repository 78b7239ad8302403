"""Operational endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import ipaddress
from typing import Literal

from fastapi import APIRouter, FastAPI, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

from bastion.errors import BastionError
from bastion.http.errors import NotFound
from bastion.services import Services
from bastion.storage.errors import StorageError


class NotReady(BastionError):
    code = "not_ready"
    status = 503
    expose = True
    title = "The service is not ready"


class Health(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["ok", "ready"]


def _metrics_allowed(request: Request, services: Services) -> bool:
    settings = services.settings
    if settings.metrics_public:
        return True
    ip_text = request.scope.get("state", {}).get("client_ip")
    if not ip_text:
        return False
    try:
        ip = ipaddress.ip_address(ip_text)
    except ValueError:
        return False
    return ip.is_loopback or any(ip in net for net in settings.metrics_allow)


def include(app: FastAPI, services: Services) -> None:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", response_model=Health, summary="Liveness: the process answers.")
    async def healthz() -> Health:
        return Health(status="ok")

    @router.get(
        "/readyz",
        response_model=Health,
        summary="Readiness: the database is reachable.",
        responses={503: {"description": "The database is unreachable."}},
    )
    async def readyz() -> Health:
        try:
            await services.database.ping()
        except StorageError:
            raise NotReady("The database is unreachable.") from None
        return Health(status="ready")

    @router.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        # Not public by default: traffic and error rates help an attacker time an attack.
        # 404 rather than 403, so scanners learn nothing.
        if not _metrics_allowed(request, services):
            raise NotFound
        return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(router)
