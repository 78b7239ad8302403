"""The limiter's cost on the foundation's HTTP overhead benchmark (same shape as
``bench.http_overhead.run``): one uvicorn worker pinned to CPU 0, wrk pinned to CPU 1, apps from
:mod:`bench.ratelimit.apps` interleaved round by round; median requests/s and p99 latency.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

APPS = ("fastapi", "fastapi_memory", "fastapi_redis", "bastion", "bastion_ratelimit")
CONNECTIONS = 32


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pin(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and os.cpu_count() != 1 else []


def _wait_for(port: int, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"server exited with {server.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("server did not start")


def _parse(output: str) -> tuple[float, float]:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", output)
    if rps is None or p99 is None:
        raise SystemExit(f"cannot parse wrk output:\n{output}")
    value, unit = float(p99.group(1)), p99.group(2)
    return float(
        rps.group(1)
    ), value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def measure(app: str, duration: int, env: dict[str, str]) -> tuple[float, float]:
    port = _free_port()
    server = subprocess.Popen(
        [*_pin(0), sys.executable, "-m", "uvicorn", f"bench.ratelimit.apps:{app}", "--factory",
         "--port", str(port), "--log-level", "warning", "--no-access-log", "--no-server-header"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_for(port, server)
        url = f"http://127.0.0.1:{port}/bench"
        command = [*_pin(1), "wrk", "-t1", f"-c{CONNECTIONS}", "--latency"]
        subprocess.run([*command, "-d2s", url], capture_output=True, check=True)  # warm-up
        done = subprocess.run(
            [*command, f"-d{duration}s", url], capture_output=True, text=True, check=True
        )
        return _parse(done.stdout)
    finally:
        server.terminate()
        server.wait(timeout=10)


def run(*, rounds: int, duration: int, redis_url: str) -> None:
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install -y wrk")
    from bastion.storage import migrate  # noqa: PLC0415

    prefix = f"bench:ratelimit:{uuid.uuid4().hex}:"
    results: dict[str, list[tuple[float, float]]] = {app: [] for app in APPS}
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(migrate.upgrade(f"sqlite+aiosqlite:///{Path(tmp) / 'bastion.db'}"))
        env = {
            **os.environ,
            "BENCH_DATA_DIR": tmp,
            "BENCH_REDIS_URL": redis_url,
            "BENCH_KEY_PREFIX": prefix,
        }
        for _ in range(rounds):
            for app in APPS:
                results[app].append(measure(app, duration, env))
    from bench.ratelimit.run import cleanup  # noqa: PLC0415 - delete only this run's keys

    asyncio.run(cleanup(redis_url, prefix))
    print(f"HTTP over sockets (wrk), {rounds} rounds x {duration}s, {CONNECTIONS} connections")
    print(f"{'app':<20} {'req/s':>10} {'p99 ms':>8}")
    med = {
        app: (statistics.median(r for r, _ in rs), statistics.median(p for _, p in rs))
        for app, rs in results.items()
    }
    for app, (rps, p99) in med.items():
        print(f"{app:<20} {rps:>10.0f} {p99:>8.2f}")
    for limited, bare in (
        ("fastapi_memory", "fastapi"),
        ("fastapi_redis", "fastapi"),
        ("bastion_ratelimit", "bastion"),
    ):
        cost_us = 1e6 / med[limited][0] - 1e6 / med[bare][0]
        ratio = med[limited][0] / med[bare][0]
        print(f"{limited} / {bare}: {ratio:.2f}x throughput, +{cost_us:.1f} us CPU per request")
