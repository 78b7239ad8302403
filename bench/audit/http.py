"""Recording an event on the HTTP overhead benchmark: wrk against a served Bastion.

One uvicorn worker pinned to CPU 0 serves :func:`bench.audit.latency.build_app` (Bastion's full
stack; sinks as ``bastion serve`` runs them: chained database + ECS log line at level info,
detectors on). wrk pinned to CPU 1 alternates, round by round, between ``/bench`` (records
nothing: the baseline) and ``/bench-audit`` (records one event). The writer drains the queue in
the same process, so its cost is in what is measured. Two loads, both reported:

- **saturation**: ``wrk -t1 -c32`` as fast as the server answers: throughput (and p99) ratio;
- **paced**: a fixed, moderate rate (``--rate`` requests per second over ``--paced-connections``
  connections, each waiting ``connections / rate`` seconds between requests, a wrk Lua
  ``delay()``): the server is not saturated, so the latency percentiles show what one event
  adds to a request at a realistic rate (its request-path cost, plus the writer's work when it
  happens to run while a request is being served).

Medians over rounds. Usage: ``.venv/bin/python -m bench.audit.http [--duration 8] [--rounds 3]
[--rate 200] [--paced-connections 4]`` (``--rate 0``: saturation only).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI

from bench.audit.common import machine
from bench.audit.latency import build_app
from bench.http_overhead.run import _free_port, _pin, _wait_for

PATHS = ("/bench", "/bench-audit")
#: wrk calls delay() before each request of a connection: milliseconds to wait.
PACING_SCRIPT = """
local pause = tonumber(os.getenv("BENCH_DELAY_MS"))
function delay()
  return pause
end
"""


@dataclass(frozen=True)
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    #: Answers that were not 2xx/3xx (wrk counts them in req/s) and socket errors/timeouts.
    bad: int = 0


def app() -> FastAPI:
    """The uvicorn factory (``bench.audit.http:app``)."""
    from bastion import logging as bastion_logging  # noqa: PLC0415

    bastion_logging.configure("info", json=True)  # stdout goes to /dev/null
    return build_app(Path(os.environ["BENCH_DATA_DIR"]), None, log_sink=True, detectors=True)


def _ms(value: str, unit: str) -> float:
    return (
        float(value) / 1000
        if unit == "us"
        else float(value) * 1000
        if unit == "s"
        else float(value)
    )


def _parse(output: str) -> Run:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", output)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", output)
    if rps is None or p50 is None or p99 is None:
        raise SystemExit(f"cannot read wrk's output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    bad = int(non_2xx.group(1)) if non_2xx else 0
    bad += sum(int(n) for n in errors.groups()) if errors else 0
    return Run(float(rps.group(1)), _ms(*p50.groups()), _ms(*p99.groups()), bad)


def _wrk(url: str, duration: int, connections: int, script: Path | None = None) -> Run:
    wrk = [*_pin(1), "wrk", "-t1", f"-c{connections}", "--latency", f"-d{duration}s"]
    wrk += ["-s", str(script)] if script else []
    completed = subprocess.run([*wrk, url], capture_output=True, text=True, check=True)
    return _parse(completed.stdout)


def _report(title: str, results: dict[str, list[Run]]) -> None:
    rps = {p: statistics.median(r.rps for r in results[p]) for p in PATHS}
    p50 = {p: statistics.median(r.p50_ms for r in results[p]) for p in PATHS}
    p99 = {p: statistics.median(r.p99_ms for r in results[p]) for p in PATHS}
    print(title)
    for path in PATHS:
        runs = ", ".join(
            f"{r.rps:.0f}/{r.p50_ms:.2f}/{r.p99_ms:.2f}" + (f" ({r.bad} bad)" if r.bad else "")
            for r in results[path]
        )
        print(
            f"  {path:12} {rps[path]:8.0f} req/s  p50 {p50[path]:7.3f} ms  p99 {p99[path]:7.3f} ms"
            f"  (rounds, req/s/p50/p99: {runs})"
        )
    base, audited = "/bench", "/bench-audit"
    print(
        f"  one event per request: throughput {rps[audited] / rps[base]:.3f}x; "
        f"p50 +{(p50[audited] - p50[base]) * 1000:.0f} us ({p50[audited] / p50[base]:.3f}x); "
        f"p99 +{(p99[audited] - p99[base]) * 1000:.0f} us ({p99[audited] / p99[base]:.3f}x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rate", type=float, default=200.0, help="Paced req/s (0: skip).")
    parser.add_argument("--paced-connections", type=int, default=4)
    args = parser.parse_args()
    print(f"run: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        from bastion.storage import migrate  # noqa: PLC0415

        asyncio.run(migrate.upgrade(f"sqlite+aiosqlite:///{Path(tmp) / 'bastion.db'}"))
        script = Path(tmp) / "pacing.lua"
        script.write_text(PACING_SCRIPT)
        os.environ["BENCH_DELAY_MS"] = str(round(args.paced_connections * 1000 / args.rate or 1))
        port = _free_port()
        # Served as `bastion serve` serves Bastion (bench/serve.py).
        command = [*_pin(0), sys.executable, "-m", "bench.serve", "bench.audit.http:app"]
        command += [str(port), "bastion"]
        server = subprocess.Popen(
            command,
            env={**os.environ, "BENCH_DATA_DIR": tmp},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        saturated: dict[str, list[Run]] = {path: [] for path in PATHS}
        paced: dict[str, list[Run]] = {path: [] for path in PATHS}
        try:
            _wait_for(port, server, timeout=120)
            for path in PATHS:  # warm-up
                _wrk(f"http://127.0.0.1:{port}{path}", 2, args.connections)
            for _ in range(args.rounds):
                for path in PATHS:
                    url = f"http://127.0.0.1:{port}{path}"
                    time.sleep(1)  # let the writer drain between measurements
                    saturated[path].append(_wrk(url, args.duration, args.connections))
                    if args.rate:
                        time.sleep(1)
                        paced[path].append(_wrk(url, args.duration, args.paced_connections, script))
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"{args.rounds} rounds x {args.duration}s each (medians)")
    _report(f"saturation: {args.connections} connections", saturated)
    if args.rate:
        _report(
            f"paced: {args.paced_connections} connections, one request every "
            f"{os.environ['BENCH_DELAY_MS']} ms each (target {args.rate:.0f} req/s)",
            paced,
        )


if __name__ == "__main__":
    main()
