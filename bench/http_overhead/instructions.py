"""Instructions per request, counted by valgrind's callgrind: figures that other load on the
machine cannot disturb (time-based figures on a shared two-core machine vary by 2x).

In-process targets (the request of ``inprocess.py``, driven synchronously, nothing suspends):
``trivial`` (the app of ``isolation.py``), a middleware class name (that middleware around the
trivial app), ``stack`` (every middleware around it), ``fastapi``, ``bastion``,
``bastion_nolimit``. Only the requests are counted: instrumentation starts after the app is
built and warm, and counting is restricted to ``operator.call``, which drives them.

``wire:APP`` (``fastapi``, ``bastion``, ``bastion_nolimit``) drives the app behind the
protocol a served worker runs, through an in-memory transport (``wire.py``): the served path
without the sockets or wrk's batching (see ``wire.py`` for what still varies).

``--served APP`` counts a uvicorn worker (server, event loop and app) under wrk load instead:
what ``run.py`` measures, in instructions. Usage::

    .venv/bin/python -m bench.http_overhead.instructions stack RateLimitMiddleware fastapi
    .venv/bin/python -m bench.http_overhead.instructions --served fastapi --served bastion
    .venv/bin/python -m bench.http_overhead.instructions wire:fastapi wire:bastion

Needs ``valgrind`` (and ``wrk`` for ``--served``); each target takes about a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import operator
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.http_overhead.inprocess import SCOPE

ASGIApp = Callable[..., Any]
_APPS = ("fastapi", "bastion", "bastion_nolimit")
_WARMUP = 300
_WRK_SECONDS = 30


async def _no_body() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _discard(_: dict[str, Any]) -> None:
    return None


def _run(app: ASGIApp, n: int) -> None:
    for _ in range(n):
        coroutine = app(dict(SCOPE, headers=list(SCOPE["headers"])), _no_body, _discard)
        try:
            coroutine.send(None)
        except StopIteration:
            continue
        raise RuntimeError("the app suspended: it cannot be driven synchronously")


def _build(target: str) -> ASGIApp:
    from bench.http_overhead import apps, isolation  # noqa: PLC0415 - after BENCH_DATA_DIR

    if target in _APPS:
        app: ASGIApp = getattr(apps, target)()
        return app
    if target == "trivial":
        return isolation.trivial_app
    middleware = isolation.bastion_middleware()
    if target == "stack":
        return isolation.stack(middleware)
    for item in middleware:
        if item.cls.__name__ == target:
            return isolation.instance(item, isolation.trivial_app)
    raise SystemExit(f"unknown target: {target}")


def _drive_wire(app_name: str, n: int, ready: Path) -> None:
    """``_drive`` for ``wire:APP``: the app behind its protocol (``wire.py``), after startup."""
    from bastion.storage import migrate  # noqa: PLC0415
    from bench.http_overhead.wire import Wire  # noqa: PLC0415 - after BENCH_DATA_DIR

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(migrate.upgrade(f"sqlite+aiosqlite:///{ready.parent / 'bastion.db'}"))
    wire = Wire(app_name)
    loop.run_until_complete(wire.start())
    loop.run_until_complete(wire.requests(_WARMUP))
    ready.write_text(str(os.getpid()))
    go = ready.with_suffix(".go")
    while not go.exists():
        time.sleep(0.05)
    operator.call(loop.run_until_complete, wire.requests(n))
    loop.run_until_complete(wire.stop())


def _drive(target: str, n: int, ready: Path) -> None:
    """Run inside valgrind: build and warm up, wait for instrumentation, drive ``n`` requests."""
    if target.startswith("wire:"):
        _drive_wire(target.removeprefix("wire:"), n, ready)
        return
    app = _build(target)
    _run(app, _WARMUP)
    ready.write_text(str(os.getpid()))
    go = ready.with_suffix(".go")
    while not go.exists():
        time.sleep(0.05)
    operator.call(_run, app, n)


def _summary(out: Path) -> int:
    match = re.search(r"^summary: (\d+)", out.read_text(), re.MULTILINE)
    if match is None:
        raise SystemExit(f"no summary in {out}")
    return int(match.group(1))


def in_process(target: str, n: int, tmp: Path) -> float:
    ready, out = tmp / f"{target}.ready", tmp / f"{target}.out"
    for stale in (ready, ready.with_suffix(".go")):  # a target named twice: its earlier run's
        stale.unlink(missing_ok=True)
    valgrind = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        "--collect-atstart=no",
        "--toggle-collect=_operator_call",  # CPython's C function behind operator.call
        f"--callgrind-out-file={out}",
    ]
    driver = [sys.executable, "-m", "bench.http_overhead.instructions"]
    env = {**os.environ, "PYTHONHASHSEED": "0", "BENCH_DATA_DIR": str(tmp)}
    proc = subprocess.Popen(
        [*valgrind, *driver, "--drive", target, str(n), str(ready)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while not ready.exists() or not ready.read_text():
        if proc.poll() is not None:
            raise SystemExit(f"{target}: the driver exited with {proc.returncode}")
        time.sleep(0.2)
    subprocess.run(
        ["callgrind_control", "-i", "on", ready.read_text()], capture_output=True, check=True
    )
    ready.with_suffix(".go").touch()
    proc.wait()
    return _summary(out) / n


def served(app: str, tmp: Path) -> float:
    from bench.http_overhead.run import _free_port, _wait_for  # noqa: PLC0415

    port, out = _free_port(), tmp / f"served-{app}.out"
    env = {**os.environ, "PYTHONHASHSEED": "0", "BENCH_DATA_DIR": str(tmp)}
    server = subprocess.Popen(
        [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-m",
            "bench.serve",  # as run.py serves each app
            f"bench.http_overhead.apps:{app}",
            str(port),
            "bastion" if app.startswith("bastion") else "stock",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(port, server, timeout=300)  # imports under valgrind are slow
        url = f"http://127.0.0.1:{port}/bench"
        wrk = ["wrk", "-t1", "-c4"]
        subprocess.run([*wrk, "-d3s", url], capture_output=True, check=True)  # warm-up
        pid = str(server.pid)
        subprocess.run(["callgrind_control", "-i", "on", pid], capture_output=True, check=True)
        report = subprocess.run(
            [*wrk, f"-d{_WRK_SECONDS}s", url], capture_output=True, text=True, check=True
        ).stdout
        # Dump while counting: the file written at exit only holds what came after the dump.
        subprocess.run(["callgrind_control", "--dump", pid], capture_output=True, check=True)
    finally:
        server.terminate()
        server.wait(timeout=60)
    match = re.search(r"(\d+) requests in", report)
    if match is None:
        raise SystemExit(f"no request count in wrk's report:\n{report}")
    return _summary(out.with_name(out.name + ".1")) / int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("targets", nargs="*", help="in-process targets (see above)")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--served", action="append", default=[], choices=_APPS)
    parser.add_argument("--drive", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        target, n, ready = args.drive
        _drive(target, int(n), Path(ready))
        return
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is missing: apt-get install -y valgrind")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        if args.served:
            from bastion.storage import migrate  # noqa: PLC0415

            asyncio.run(migrate.upgrade(f"sqlite+aiosqlite:///{tmp / 'bastion.db'}"))
        for target in args.targets:
            print(f"{target:<34} {in_process(target, args.requests, tmp):>10,.0f} instr/request")
        for app in args.served:
            print(f"{'served ' + app:<34} {served(app, tmp):>10,.0f} instr/request")


if __name__ == "__main__":
    main()
