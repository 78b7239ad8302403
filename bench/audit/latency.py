"""Added cost per request of recording one audit event, on Bastion's full stack, in process.

Two paths of one route on the same ``create_app``, taking the ``Request``: ``/bench`` (records
nothing, the baseline) and ``/bench-audit`` (records one event with ``record_from_scope``, as
every security-relevant handler does). Each is driven ``--requests`` times without sockets; CPU time
(``process_time``) is measured over the requests *and* the recorder's writer draining its queue
afterwards, so the figure includes the whole cost of the event: queueing, the chained database
insert (HMAC, head lock, batch of ``BASTION_AUDIT_BATCH_SIZE``) and the ECS log line. Rounds
alternate the routes; medians are reported with the ratio.

Usage: ``.venv/bin/python -m bench.audit.latency [--requests 5000] [--rounds 3]
[--database-url postgresql+asyncpg://...]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request

from bench.http_overhead.inprocess import SCOPE, _receive, _send

TARGET_RATIO = 1.05
EVENT_TYPE: Any = None
#: A typical event no detector counts: the cost measured is the trail's, not a detector's.
EVENT_TYPE_NAME = "IDENTITY_PROFILE_UPDATED"


def build_app(
    data_dir: Path,
    database_url: str | None,
    *,
    log_sink: bool,
    detectors: bool,
    event: bool = True,
) -> FastAPI:
    """Bastion's app with the benchmark's route (see the module docstring); ``event=False``:
    ``/bench-audit`` records nothing either (an A/A control of the harness)."""
    from bastion.app import create_app  # noqa: PLC0415
    from bastion.audit.context import record_from_scope  # noqa: PLC0415
    from bastion.audit.events import EventType, Outcome  # noqa: PLC0415
    from bastion.config import Settings  # noqa: PLC0415
    from bastion.protections.ratelimit.settings import RateLimitSettings  # noqa: PLC0415

    global EVENT_TYPE  # noqa: PLW0603 - resolved after the lazy import
    EVENT_TYPE = EventType[EVENT_TYPE_NAME]
    limits = RateLimitSettings(policies={"api-ip": {"limit": 10_000_000, "window_seconds": 1}})
    settings = Settings(
        env="test",
        data_dir=data_dir,
        database_url=database_url,
        secret_key="b" * 48,
        log_level="warning",
        ratelimit=limits,
        audit_queue_size=100_000,
        audit_log_sink=log_sink,
        monitoring={"detectors_enabled": detectors},
    )
    app = create_app(settings, freeze_gc_after_startup=True)  # as `bastion serve`
    recorder = app.state.services.audit

    # One route serves both paths, "/bench" (suffix "") and "/bench-audit" (suffix "-audit"):
    # the same match, path parameter and injection, so the two differ by the event alone. With
    # two routes, "/bench-audit" sat behind "/bench" in the route table and paid one more match
    # (served at 200 req/s: about +11 us of the paired difference, 2026-11-29).
    @app.get("/bench{suffix:path}")
    async def bench(request: Request, suffix: str) -> dict[str, object]:
        if suffix and event:
            record_from_scope(
                recorder,
                request.scope,
                EVENT_TYPE,
                Outcome.SUCCESS,
                actor="user:bench",
                subject="user:bench",
                details={"fields": ["display_name"]},
            )
        return {"ok": True}

    app.router.routes.insert(0, app.router.routes.pop())  # first (bench/http_overhead/apps.py)
    return app


async def _drive(app: Any, path: str, n: int) -> tuple[float, float]:
    """CPU us/request: (the request path only, including the writer draining the queue)."""
    scope = {**SCOPE, "path": path, "raw_path": path.encode()}
    queue = app.state.services.audit._queue  # noqa: SLF001 - the bench waits for the writer
    start = time.process_time()
    for _ in range(n):
        await app(dict(scope), _receive, _send)
    handled = time.process_time()
    await queue.join()
    done = time.process_time()
    return (handled - start) / n * 1e6, (done - start) / n * 1e6


async def main_async(
    requests: int, rounds: int, database_url: str | None, *, log_sink: bool, detectors: bool
) -> None:
    from bastion import logging as bastion_logging  # noqa: PLC0415
    from bastion.storage import migrate  # noqa: PLC0415

    # As `bastion serve` does: JSON lines at info (the ECS audit lines included), to /dev/null.
    bastion_logging.configure("info", json=True, stream=open(os.devnull, "w"))  # noqa: ASYNC230, SIM115, PTH123
    data_dir = Path(tempfile.mkdtemp())
    url = database_url or f"sqlite+aiosqlite:///{data_dir / 'bastion.db'}"
    await migrate.upgrade(url)
    app = build_app(data_dir, database_url, log_sink=log_sink, detectors=detectors)
    paths = ("/bench", "/bench-audit")
    results: dict[str, list[tuple[float, float]]] = {path: [] for path in paths}
    async with app.router.lifespan_context(app):
        for path in paths:
            await _drive(app, path, 300)
        for _ in range(rounds):
            for path in paths:
                results[path].append(await _drive(app, path, requests))
        services = app.state.services
        report = await services.audit_log.verify()
        dropped = services.audit.dropped_total
    backend = "PostgreSQL" if database_url else "SQLite"
    sinks = "database + ECS log line" if log_sink else "database only"
    sinks += ", detectors on" if detectors else ", detectors off"
    print(f"{backend}, sinks: {sinks}; {requests} requests x {rounds} rounds; CPU us/request")
    for index, label in ((0, "request path"), (1, "with the write")):
        base = statistics.median(r[index] for r in results["/bench"])
        audited = statistics.median(r[index] for r in results["/bench-audit"])
        ratio = audited / base
        verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
        print(
            f"  {label:15} no event {base:7.1f}  one event {audited:7.1f}  "
            f"added {audited - base:6.1f} us  ratio {ratio:.3f} (target <= 1.05: {verdict})"
        )
    print(
        f"  chain after the run: intact={report.intact}, {report.checked} events; dropped {dropped}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--no-log-sink", action="store_true", help="Database sink only.")
    parser.add_argument("--no-detectors", action="store_true", help="Monitoring detectors off.")
    args = parser.parse_args()
    asyncio.run(
        main_async(
            args.requests,
            args.rounds,
            args.database_url,
            log_sink=not args.no_log_sink,
            detectors=not args.no_detectors,
        )
    )


if __name__ == "__main__":
    main()
