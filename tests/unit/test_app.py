"""``create_app``'s FastAPI: the layers its HTTP core makes idle are left out, and FastAPI's
native OpenTelemetry instrumentation runs only when ``otel_enabled`` is set."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import trace
from structlog.testing import capture_logs
from tests.conftest import migrated

from bastion.app import create_app
from bastion.config.settings import Settings
from bastion.http.middleware.core import HttpCoreMiddleware
from bastion.http.problems import PROBLEM_CONTENT_TYPE


class _RecordingTracer(trace.NoOpTracer):
    def __init__(self, names: list[str]) -> None:
        self.names = names

    def start_span(self, name: str, *args: Any, **kwargs: Any) -> trace.Span:
        self.names.append(name)
        return super().start_span(name, *args, **kwargs)


class _RecordingProvider(trace.TracerProvider):
    """A configured tracer provider (not the API's deferred proxy) that records span names."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def get_tracer(self, *_: Any, **__: Any) -> trace.Tracer:
        return _RecordingTracer(self.names)


async def _get(app: FastAPI, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://localhost") as http,
    ):
        return await http.get(path)


@pytest.mark.parametrize("otel_enabled", [False, True])
async def test_the_http_core_is_the_outermost_layer(settings: Settings, otel_enabled: bool) -> None:
    app = create_app(settings.model_copy(update={"otel_enabled": otel_enabled}))
    # FastAPI's ServerErrorMiddleware, ExceptionTelemetryMiddleware and AppBodyLimitMiddleware
    # would stand in front of it: no exception passes the core, they never act.
    assert type(app.build_middleware_stack()) is HttpCoreMiddleware


async def test_a_failing_route_is_still_a_logged_problem(settings: Settings) -> None:
    await migrated(settings.effective_database_url)
    app = create_app(settings)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("SELECT secret FROM keys")

    with capture_logs() as logs:
        response = await _get(app, "/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert response.json()["code"] == "internal_error"
    assert "SELECT" not in response.text
    assert "Traceback" not in response.text
    assert response.headers["x-content-type-options"] == "nosniff"
    logged = [entry for entry in logs if entry["event"] == "http_unhandled_exception"]
    assert len(logged) == 1
    assert logged[0]["exc_info"] is True
    # The router's own HTTPException (not found) still goes to Bastion's handler.
    missing = await _get(app, "/no/such/path")
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"


@pytest.mark.parametrize(("otel_enabled", "spans"), [(False, []), (True, ["GET"])])
async def test_fastapi_telemetry_runs_only_when_enabled(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, otel_enabled: bool, spans: list[str]
) -> None:
    provider = _RecordingProvider()
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)  # as set_tracer_provider would
    await migrated(settings.effective_database_url)
    app = create_app(settings.model_copy(update={"otel_enabled": otel_enabled}))
    response = await _get(app, "/healthz")
    assert response.status_code == 200
    assert [name for name in provider.names if not name.startswith("fastapi.")] == spans
