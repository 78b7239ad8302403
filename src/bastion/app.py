"""``create_app(settings)``: the one place where Bastion is wired together.

Middleware order matters and is listed outermost first in :func:`_middleware`: the proxy
middleware decides the client IP and scheme before anything logs them; the request id exists
before any answer is written; security headers wrap every answer, errors included; the error
middleware turns any exception into a 500 problem+json inside the header and audit layers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.middleware import Middleware

from bastion import __version__
from bastion.audit import routes as audit_routes
from bastion.authz import api as authz_api
from bastion.authz.builtin import routes as elevation_routes
from bastion.authz.builtin.model import Permission
from bastion.config.production import enforce
from bastion.config.settings import Settings
from bastion.http import handlers, responses
from bastion.http.middleware.audit_rejections import RejectionAuditMiddleware
from bastion.http.middleware.body_limit import BodyLimitMiddleware
from bastion.http.middleware.content_type import JsonContentMiddleware
from bastion.http.middleware.cors import CORSMiddleware
from bastion.http.middleware.errors import ErrorMiddleware
from bastion.http.middleware.methods import MethodFilterMiddleware
from bastion.http.middleware.proxy import ProxyHeadersMiddleware
from bastion.http.middleware.request_id import RequestIdMiddleware
from bastion.http.middleware.security_headers import SecurityHeadersMiddleware
from bastion.http.middleware.trusted_host import TrustedHostMiddleware
from bastion.identity import routes as identity_routes
from bastion.monitoring import routes as monitoring_routes
from bastion.ops import routes as ops_routes
from bastion.ops.metrics import MetricsMiddleware
from bastion.protections.ratelimit import wiring as ratelimit_wiring
from bastion.services import Services, build_services


def _middleware(settings: Settings, services: Services) -> list[Middleware]:
    """The hardened HTTP core, outermost first."""
    return [
        Middleware(ProxyHeadersMiddleware, trusted_proxies=settings.trusted_proxies),
        Middleware(RequestIdMiddleware),
        Middleware(SecurityHeadersMiddleware, hsts_max_age=settings.hsts_max_age),
        Middleware(MetricsMiddleware, metrics=services.metrics),
        # Overload shedding: counted by metrics, carries security headers, not audited.
        services.rate_limiting.concurrency_middleware(),
        Middleware(RejectionAuditMiddleware, recorder=services.audit),
        Middleware(ErrorMiddleware, debug=settings.debug and not settings.is_production),
        Middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts),
        Middleware(MethodFilterMiddleware),
        Middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allow_origins,
            allow_credentials=settings.cors_allow_credentials,
            max_age=settings.cors_max_age,
        ),
        # Inside CORS so browsers can read a 429; before any body is read.
        services.rate_limiting.rate_limit_middleware(),
        Middleware(BodyLimitMiddleware, default_limit=settings.max_body_bytes),
        Middleware(
            JsonContentMiddleware,
            max_depth=settings.max_json_depth,
            max_elements=settings.max_json_elements,
        ),
    ]


def create_app(settings: Settings | None = None, *, services: Services | None = None) -> FastAPI:
    """Build the Bastion ASGI app. Refuses insecure settings in production."""
    settings = settings or Settings()
    enforce(settings)
    services = services or build_services(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, Any]]:
        await services.start()
        try:
            yield {}
        finally:
            await services.aclose()

    docs = settings.docs_enabled
    app = FastAPI(
        title="Bastion",
        version=__version__,
        description="Secure-by-default backend core: identity, authorization, protections, audit.",
        docs_url="/docs" if docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
        swagger_ui_oauth2_redirect_url=None,
        lifespan=lifespan,
        middleware=_middleware(settings, services),
    )
    app.state.services = services
    handlers.include(app)
    ops_routes.include(app, services)
    identity_routes.include(app, services.identity)
    audit_routes.include(
        app,
        services.audit_log,
        services.audit,
        principal=services.identity.principal,
        step_up=services.identity.step_up,
        # Decided by the engine: administrators and security auditors read the trail.
        is_admin=lambda user_id: services.identity.admin.allows(user_id, Permission.READ_AUDIT),
    )
    authz_api.include(app, services)
    elevation_routes.include(
        app,
        services.system_admin.elevations,
        services.identity.step_up,
    )
    monitoring_routes.include(
        app,
        services.monitoring.dead_letters,
        services.identity.admin,
        services.identity.principal,
        services.identity.step_up,
    )
    ratelimit_wiring.include(app, services.rate_limiting)
    responses.document_on_every_route(app)
    return app
