"""``create_app(settings)``: the one place where Bastion is wired together.

Middleware order matters and is listed outermost first in :func:`_middleware`: the HTTP core
(:mod:`bastion.http.middleware.core`) decides the client IP and scheme before anything logs them,
sets the request id before any answer is written, puts security headers on every answer, errors
included, and turns any exception into a 500 problem+json inside its header and audit steps.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi._body_limit import AppBodyLimitMiddleware
from fastapi.telemetry import TelemetryConfig
from fastapi.telemetry._asgi import ExceptionTelemetryMiddleware
from starlette.middleware import Middleware
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from bastion import __version__
from bastion.audit import routes as audit_routes
from bastion.authz import api as authz_api
from bastion.authz.builtin import routes as elevation_routes
from bastion.config.production import enforce
from bastion.config.settings import Settings
from bastion.http import handlers, responses
from bastion.http.middleware.body_limit import BodyLimitMiddleware
from bastion.http.middleware.content_type import JsonContentMiddleware
from bastion.http.middleware.core import HttpCoreMiddleware
from bastion.http.middleware.cors import CORSMiddleware
from bastion.http.middleware.direct_routes import DirectRoutesMiddleware
from bastion.identity import routes as identity_routes
from bastion.monitoring import routes as monitoring_routes
from bastion.ops import routes as ops_routes
from bastion.privacy import routes as privacy_routes
from bastion.protections.ratelimit import wiring as ratelimit_wiring
from bastion.services import Services, build_services


def _middleware(settings: Settings, services: Services) -> list[Middleware]:
    """The hardened HTTP core, outermost first (see :mod:`bastion.http.middleware`)."""
    return [
        # Proxy, request id, security headers, metrics, rejection audit, errors, trusted host
        # and method filter, fused into one layer (one call and one send wrapper per request).
        Middleware(
            HttpCoreMiddleware,
            metrics=services.metrics,
            recorder=services.audit,
            allowed_hosts=settings.allowed_hosts,
            trusted_proxies=settings.trusted_proxies,
            hsts_max_age=settings.hsts_max_age,
            debug=settings.debug and not settings.is_production,
        ),
        # Right inside the core: a request without Origin skips it (see the core).
        Middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allow_origins,
            allow_credentials=settings.cors_allow_credentials,
            max_age=settings.cors_max_age,
        ),
        # The concurrency cap, then the rate limits, in one layer. Overload shedding: counted
        # by metrics, carries security and CORS headers, not audited. Inside CORS so browsers
        # can read a 429; before any body is read.
        services.rate_limiting.protections_middleware(),
        Middleware(BodyLimitMiddleware, default_limit=settings.max_body_bytes),
        Middleware(
            JsonContentMiddleware,
            max_depth=settings.max_json_depth,
            max_elements=settings.max_json_elements,
        ),
        # Innermost, behind every layer above: the hottest identity routes answered without
        # FastAPI's exception layer, exit stack and router (it takes the exception layer's
        # place, so every other request crosses as many layers as before).
        Middleware(DirectRoutesMiddleware),
    ]


#: FastAPI's native OpenTelemetry instrumentation, switched off (``Settings.otel_enabled``).
_NO_TELEMETRY: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
    "auto_configure": False,
}


class _Bastion(FastAPI):
    """FastAPI, without the layers that Bastion's HTTP core makes idle.

    FastAPI puts three layers outside the app's own middleware: Starlette's
    ``ServerErrorMiddleware`` (an exception that reaches it gets a plain-text 500, then is
    raised again), FastAPI's ``ExceptionTelemetryMiddleware`` (records an exception passing
    through it, then raises it again) and ``AppBodyLimitMiddleware`` (acts only for a parent
    app's ``max_body_size``: a 413 for the parent's body-limit exception). Bastion's HTTP core
    is the outermost of the app's middleware and answers every ``Exception`` itself (500
    problem+json, logged with its traceback; a parent's body-limit error included): no
    exception reaches those layers, and each costs a coroutine per request (three: a twentieth
    of a trivial request). They are left out of the stack when they stand, exactly so, in front
    of the core; anything else keeps FastAPI's stack as built. An exception raised by the core
    itself (a bug) then goes to the server, which answers 500 and logs it, as it does for any
    app.

    With FastAPI's telemetry off (the default, see ``Settings.otel_enabled``), an HTTP request
    goes to the stack directly: ``FastAPI.__call__`` would look the three OpenTelemetry
    providers up on every request (an environment look-up and a ``KeyError`` each, a tenth of a
    trivial request) only to find that nothing is to be recorded.
    """

    def __init__(self, *, otel_enabled: bool, **options: Any) -> None:
        super().__init__(telemetry=None if otel_enabled else _NO_TELEMETRY, **options)
        self._telemetry_off = not otel_enabled

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        app = stack
        if type(app) is ServerErrorMiddleware and app.handler is None and not app.debug:
            app = app.app
            if type(app) is ExceptionTelemetryMiddleware:
                app = app.app
                if type(app) is AppBodyLimitMiddleware and type(app.app) is HttpCoreMiddleware:
                    return app.app  # max_body_size None: no body-limit layer of its own inside
        return stack

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._telemetry_off and scope["type"] == "http":
            # FastAPI.__call__ and Starlette.__call__ for an HTTP request without telemetry.
            if self.root_path:
                scope["root_path"] = self.root_path
            scope["app"] = self
            stack = self.middleware_stack
            if stack is None:
                stack = self.middleware_stack = self.build_middleware_stack()
            await stack(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _freeze_young_and_loaded() -> None:
    """After a large long-lived structure was built (a store's tuple index, millions of
    objects): freeze what is alive, so that full collections no longer walk it (a pause of
    about 2 s of CPU each at 1,000,000 tuples). No collection first: the new index sits in
    the young generations (built with the collector paused), and collecting them would walk it
    all (0.7 s of CPU measured). Cyclic garbage alive at that moment is frozen with it: a
    bounded amount, once per large load. Frozen objects are still freed by reference counting
    (a tuple deleted later, an index reloaded or evicted)."""
    gc.freeze()


def create_app(
    settings: Settings | None = None,
    *,
    services: Services | None = None,
    freeze_gc_after_startup: bool = False,
) -> FastAPI:
    """Build the Bastion ASGI app. Refuses insecure settings in production.

    ``freeze_gc_after_startup`` (served workers: :func:`bastion.asgi.app_from_env`) moves
    everything alive once started (modules, routes, models, caches) out of the garbage
    collector's reach: a full collection then scans only what requests create, which took a
    69 ms pause under load before. Not for processes that build many apps (tests): what is
    frozen is never collected."""
    settings = settings or Settings()
    enforce(settings)
    services = services or build_services(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, Any]]:
        await services.start()
        if freeze_gc_after_startup:
            gc.collect()
            gc.freeze()
            # A store's tuple index is loaded on first use, after this: freeze it too.
            services.authz.index.on_loaded = _freeze_young_and_loaded
        try:
            yield {}
        finally:
            await services.aclose()

    docs = settings.docs_enabled
    app = _Bastion(
        title="Bastion",
        version=__version__,
        description="Secure-by-default backend core: identity, authorization, protections, audit.",
        docs_url="/docs" if docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
        swagger_ui_oauth2_redirect_url=None,
        lifespan=lifespan,
        middleware=_middleware(settings, services),
        otel_enabled=settings.otel_enabled,
    )
    app.state.services = services
    handlers.include(app)
    ops_routes.include(app, services)
    # Routes are matched in order: the OpenFGA-compatible API's checks are the hottest path
    # and FastAPI tries each route in turn (~120 us of CPU behind ~70 others, measured).
    authz_api.include(app, services)
    identity_routes.include(app, services.identity)
    audit_routes.include(
        app,
        services.audit_log,
        services.audit,
        principal=services.identity.principal,
        step_up=services.identity.step_up,
        # The routes declare can_read_audit with the SDK, decided by the engine.
        authorizer=services.system_admin.authorizer(services.identity.principal),
    )
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
    privacy_routes.include(app, services)
    ratelimit_wiring.include(app, services.rate_limiting)
    responses.document_on_every_route(app)
    return app
