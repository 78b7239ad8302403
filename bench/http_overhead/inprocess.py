"""In-process cost of each app per request (no sockets): a profiler-friendly companion to run.py.

Usage: ``.venv/bin/python -m bench.http_overhead.inprocess [--profile] [--requests 20000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import tempfile
import time
from typing import Any

from bench.http_overhead import apps

SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.4"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/bench",
    "raw_path": b"/bench",
    "root_path": "",
    "query_string": b"",
    "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk"), (b"accept", b"*/*")],
    "client": ("127.0.0.1", 40000),
    "server": ("127.0.0.1", 8000),
}


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(_: dict[str, Any]) -> None:
    return None


async def _drive(app: Any, n: int) -> float:
    start = time.process_time()
    for _ in range(n):
        await app(dict(SCOPE), _receive, _send)
    return (time.process_time() - start) / n * 1e6


async def main_async(n: int, profile: bool) -> None:
    import os  # noqa: PLC0415

    os.environ.setdefault("BENCH_DATA_DIR", tempfile.mkdtemp())
    from bastion.storage import migrate  # noqa: PLC0415

    await migrate.upgrade(f"sqlite+aiosqlite:///{os.environ['BENCH_DATA_DIR']}/bastion.db")
    results = {}
    for name in ("starlette", "fastapi", "bastion"):
        app = getattr(apps, name)()
        async with app.router.lifespan_context(app):
            await _drive(app, 500)
            if profile and name == "bastion":
                prof = cProfile.Profile()
                prof.enable()
                results[name] = await _drive(app, n)
                prof.disable()
                pstats.Stats(prof).sort_stats("tottime").print_stats(25)
            else:
                results[name] = await _drive(app, n)
    for name, us in results.items():
        print(f"{name:<10} {us:8.1f} us/request")
    print(f"bastion stack adds {results['bastion'] - results['fastapi']:.1f} us/request")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    asyncio.run(main_async(args.requests, args.profile))


if __name__ == "__main__":
    main()
