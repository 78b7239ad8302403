"""CPU cost of each middleware of Bastion's stack, alone and together (no sockets, no framework).

Each middleware in ``create_app(...).user_middleware`` wraps a trivial ASGI app (one JSON answer,
the headers a ``JSONResponse`` sends, ``scope["route"]`` set as the router would) and is driven
with the same GET request as ``inprocess.py``. The cost is CPU time (``time.process_time``), so
other processes on the machine barely disturb it; each figure is the fastest of ``--rounds``
rounds, minus the trivial app's fastest round (the two interleaved). The last lines drive the
whole stack. On a busy machine these figures still vary; ``instructions.py`` counts
instructions instead, which load cannot disturb.

Usage: ``.venv/bin/python -m bench.http_overhead.isolation [--requests 2000] [--rounds 25]``
(``--profile NAME`` prints a cProfile of one middleware, or ``stack``).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import math
import os
import pstats
import tempfile
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry
from starlette.middleware import Middleware

from bench.http_overhead import apps
from bench.http_overhead.inprocess import SCOPE

Message = dict[str, Any]
ASGIApp = Callable[..., Any]


class _Route:
    """What the router leaves in ``scope["route"]`` (the metrics read its template)."""

    path = "/bench"


_ROUTE = _Route()
_BODY = b'{"ok":true,"service":"bench"}'
_START_HEADERS = (
    (b"content-length", str(len(_BODY)).encode("ascii")),
    (b"content-type", b"application/json"),
)


async def trivial_app(scope: dict[str, Any], _receive: Any, send: Any) -> None:
    """The innermost app: a fixed JSON answer, as the benchmark route gives."""
    scope["route"] = _ROUTE
    await send({"type": "http.response.start", "status": 200, "headers": list(_START_HEADERS)})
    await send({"type": "http.response.body", "body": _BODY})


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _discard(_: Message) -> None:
    return None


def instance(middleware: Middleware, app: ASGIApp) -> ASGIApp:
    """A fresh instance of ``middleware`` around ``app``.

    Middleware that register Prometheus metrics get a registry of their own: registering the
    same metric names twice in the app's registry is an error.
    """
    kwargs = dict(middleware.kwargs)
    if "registry" in kwargs:
        kwargs["registry"] = CollectorRegistry()
    return middleware.cls(app, *middleware.args, **kwargs)  # type: ignore[no-any-return]


def stack(middleware: list[Middleware]) -> ASGIApp:
    app: ASGIApp = trivial_app
    for item in reversed(middleware):
        app = instance(item, app)
    return app


async def _drive(app: ASGIApp, n: int) -> float:
    """Microseconds of CPU time per request."""
    start = time.process_time()
    for _ in range(n):
        await app(dict(SCOPE, headers=list(SCOPE["headers"])), _no_body, _discard)
    return (time.process_time() - start) / n * 1e6


async def _added(app: ASGIApp, n: int, rounds: int) -> float:
    """Microseconds ``app`` adds to the trivial app: the fastest round of each, interleaved so
    that a busy spell on the machine slows both alike."""
    await _drive(app, min(n, 1000))  # warm caches
    base = cost = math.inf
    for _ in range(rounds):
        base = min(base, await _drive(trivial_app, n))
        cost = min(cost, await _drive(app, n))
    return cost - base


def bastion_middleware() -> list[Middleware]:
    """The middleware of ``create_app`` as the benchmark app has it, outermost first."""
    os.environ.setdefault("BENCH_DATA_DIR", tempfile.mkdtemp())
    return list(apps.bastion().user_middleware)


async def main_async(n: int, rounds: int, profile: str | None) -> None:
    middleware = bastion_middleware()
    if profile is not None:
        app = (
            stack(middleware)
            if profile == "stack"
            else next(instance(m, trivial_app) for m in middleware if m.cls.__name__ == profile)
        )
        await _drive(app, 1000)
        prof = cProfile.Profile()
        prof.enable()
        await _drive(app, n)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)
        return
    base = min([await _drive(trivial_app, n) for _ in range(rounds)])
    print(f"{'trivial app (baseline)':<34} {base:7.2f} us/request")
    total = 0.0
    for item in middleware:
        cost = await _added(instance(item, trivial_app), n, rounds)
        total += cost
        print(f"{item.cls.__name__:<34} {cost:+7.2f} us")
    print(f"{'sum of the above':<34} {total:+7.2f} us")
    print(f"{'whole stack':<34} {await _added(stack(middleware), n, rounds):+7.2f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--profile", metavar="NAME", help="a middleware class name, or 'stack'")
    args = parser.parse_args()
    asyncio.run(main_async(args.requests, args.rounds, args.profile))


if __name__ == "__main__":
    main()
