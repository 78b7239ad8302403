"""The three apps the HTTP overhead benchmark compares, each serving the same trivial route.

- ``starlette``: a bare Starlette app (the framework's own cost, for the record);
- ``fastapi``: a bare FastAPI app, same route, no middleware (the baseline);
- ``bastion``: Bastion's ``create_app`` with its full middleware stack, same route added.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

PAYLOAD = {"ok": True, "service": "bench"}


async def _starlette_endpoint(_: Request) -> JSONResponse:
    return JSONResponse(PAYLOAD)


def starlette() -> Starlette:
    return Starlette(routes=[Route("/bench", _starlette_endpoint)])


def _add_route(app: FastAPI) -> FastAPI:
    @app.get("/bench")
    async def bench() -> dict[str, object]:
        return PAYLOAD

    return app


def fastapi() -> FastAPI:
    return _add_route(FastAPI())


def bastion() -> FastAPI:
    from bastion.app import create_app  # noqa: PLC0415
    from bastion.config import Settings  # noqa: PLC0415

    data_dir = Path(os.environ.get("BENCH_DATA_DIR", "bench/results/data"))
    settings = Settings(env="test", data_dir=data_dir, secret_key="b" * 48, log_level="warning")
    return _add_route(create_app(settings))
