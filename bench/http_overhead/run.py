"""HTTP overhead benchmark: Bastion's full middleware stack against the bare framework.

Each app runs in one uvicorn worker pinned to CPU 0 (``bench.serve``: Bastion's apps with
Bastion's protocol, as ``bastion serve`` runs them, the bare apps with stock uvicorn); wrk runs
pinned to CPU 1, so the load generator is not competing with the server. Prints requests/s and
p99 latency for each app and the ratios.
Usage: ``.venv/bin/python -m bench.http_overhead.run [--duration 10] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
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
from dataclasses import dataclass
from pathlib import Path

APPS = ("starlette", "fastapi", "bastion_nolimit", "bastion")
TARGET_RATIO = 0.8


@dataclass
class Result:
    rps: float
    p99_ms: float


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("server did not start")


def _pin(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and os.cpu_count() != 1 else []


def _parse_wrk(output: str) -> Result:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    match = re.search(r"99%\s+([\d.]+)(us|ms|s)", output)
    value, unit = float(match.group(1)), match.group(2)  # type: ignore[union-attr]
    p99_ms = value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    return Result(rps, p99_ms)


def measure(app: str, duration: int, connections: int, data_dir: Path) -> Result:
    port = _free_port()
    env = {**os.environ, "BENCH_DATA_DIR": str(data_dir)}
    server = subprocess.Popen(
        [
            *_pin(0),
            sys.executable,
            "-m",
            "bench.serve",  # Bastion's apps as `bastion serve` serves them (see bench/serve.py)
            f"bench.http_overhead.apps:{app}",
            str(port),
            "bastion" if app.startswith("bastion") else "stock",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(port, server)
        url = f"http://127.0.0.1:{port}/bench"
        wrk = [*_pin(1), "wrk", "-t1", f"-c{connections}", "--latency"]
        subprocess.run([*wrk, "-d2s", url], capture_output=True, check=True)  # warm-up
        out = subprocess.run(
            [*wrk, f"-d{duration}s", url], capture_output=True, text=True, check=True
        ).stdout
        return _parse_wrk(out)
    finally:
        server.terminate()
        server.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install -y wrk")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        from bastion.storage import migrate  # noqa: PLC0415

        asyncio.run(migrate.upgrade(f"sqlite+aiosqlite:///{data_dir / 'bastion.db'}"))
        results: dict[str, list[Result]] = {app: [] for app in APPS}
        # Interleave the apps round by round so drift in machine load hits all of them alike.
        for _ in range(args.rounds):
            for app in APPS:
                results[app].append(measure(app, args.duration, args.connections, data_dir))
    print(f"HTTP overhead, {args.rounds} rounds x {args.duration}s, {args.connections} connections")
    print(f"{'app':<16} {'req/s (median)':>15} {'p99 ms (median)':>16}")
    med: dict[str, Result] = {}
    for app in APPS:
        med[app] = Result(
            statistics.median(r.rps for r in results[app]),
            statistics.median(r.p99_ms for r in results[app]),
        )
        print(f"{app:<16} {med[app].rps:>15.0f} {med[app].p99_ms:>16.2f}")
    ratio = med["bastion"].rps / med["fastapi"].rps
    print(f"bastion / bare fastapi throughput: {ratio:.2f}x (target >= {TARGET_RATIO}x)")
    print(f"fastapi / bare starlette throughput: {med['fastapi'].rps / med['starlette'].rps:.2f}x")
    print(f"p99 bastion / fastapi: {med['bastion'].p99_ms / med['fastapi'].p99_ms:.2f}x")
    limiter = med["bastion"].rps / med["bastion_nolimit"].rps
    print(f"rate limiter (memory store): bastion / bastion without limiter: {limiter:.2f}x")


if __name__ == "__main__":
    main()
