"""Recording an event on the HTTP overhead benchmark: wrk against a served Bastion.

One uvicorn worker pinned to CPU 0 serves :func:`bench.audit.latency.build_app` (Bastion's full
stack; sinks as ``bastion serve`` runs them: chained database + ECS log line at level info,
detectors on). ``wrk -t1 -c32`` pinned to CPU 1 alternates, round by round, between ``/bench``
(records nothing: the baseline) and ``/bench-audit`` (records one event). The writer drains the
queue in the same process, so its cost is in the measured throughput. Medians and ratios.

Usage: ``.venv/bin/python -m bench.audit.http [--duration 8] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fastapi import FastAPI

from bench.audit.common import machine
from bench.audit.latency import build_app
from bench.http_overhead.run import Result, _free_port, _parse_wrk, _pin, _wait_for

PATHS = ("/bench", "/bench-audit")


def app() -> FastAPI:
    """The uvicorn factory (``bench.audit.http:app``)."""
    from bastion import logging as bastion_logging  # noqa: PLC0415

    bastion_logging.configure("info", json=True)  # stdout goes to /dev/null
    return build_app(Path(os.environ["BENCH_DATA_DIR"]), None, log_sink=True, detectors=True)


def _wrk(url: str, duration: int, connections: int) -> Result:
    wrk = [*_pin(1), "wrk", "-t1", f"-c{connections}", "--latency", f"-d{duration}s", url]
    return _parse_wrk(subprocess.run(wrk, capture_output=True, text=True, check=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    print(f"run: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        from bastion.storage import migrate  # noqa: PLC0415

        asyncio.run(migrate.upgrade(f"sqlite+aiosqlite:///{Path(tmp) / 'bastion.db'}"))
        port = _free_port()
        command = [*_pin(0), sys.executable, "-m", "uvicorn", "bench.audit.http:app"]
        command += ["--factory", "--port", str(port), "--log-level", "warning"]
        command += ["--no-access-log", "--no-server-header"]
        server = subprocess.Popen(
            command,
            env={**os.environ, "BENCH_DATA_DIR": tmp},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        results: dict[str, list[Result]] = {path: [] for path in PATHS}
        try:
            _wait_for(port, server, timeout=120)
            for path in PATHS:  # warm-up
                _wrk(f"http://127.0.0.1:{port}{path}", 2, args.connections)
            for _ in range(args.rounds):
                for path in PATHS:
                    time.sleep(1)  # let the writer drain between measurements
                    results[path].append(
                        _wrk(f"http://127.0.0.1:{port}{path}", args.duration, args.connections)
                    )
        finally:
            server.terminate()
            server.wait(timeout=30)
    rps = {p: statistics.median(r.rps for r in results[p]) for p in PATHS}
    p99 = {p: statistics.median(r.p99_ms for r in results[p]) for p in PATHS}
    print(f"{args.rounds} rounds x {args.duration}s, {args.connections} connections (medians)")
    for path in PATHS:
        runs = [round(r.rps) for r in results[path]]
        print(f"  {path:12} {rps[path]:8.0f} req/s  p99 {p99[path]:6.1f} ms  {runs}")
    ratio = rps["/bench-audit"] / rps["/bench"]
    print(
        f"  one event per request: {ratio:.3f}x the throughput ({(1 - ratio) * 100:.1f} % lower;"
        f" target < 5 %), p99 {p99['/bench-audit'] / p99['/bench']:.2f}x"
    )


if __name__ == "__main__":
    main()
