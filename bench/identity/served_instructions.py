"""Instructions per refresh rotation in a *served* worker (callgrind, every thread), to compare
function by function with :mod:`bench.identity.instructions` (the same app driven in process).

The database is prepared by a normal ``bastion serve`` (:func:`bench.identity.http.start_bastion`:
migrations, one verified account, ``C`` sessions logged in), which is then stopped; the worker
``python -m bastion.server 1`` (what ``bastion serve`` executes, with its malloc settings) is
started on the same data directory under ``valgrind --tool=callgrind --instr-atstart=no``.
After ``--warmup`` rotations, counting is switched on for ``--requests`` rotations over ``C``
keep-alive connections (each chaining its own session) and the audit writer's last batch, then
dumped. Kernel work (system calls) is not counted. Usage::

    .venv/bin/python -m bench.identity.served_instructions [--requests 600] [--connections 1]
        [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench.identity import http
from bench.identity.http import create_user
from bench.identity.served_cpu import EMAIL, chain_tokens, new_sessions, run_on_load_cpu


def _worker(
    data_dir: Path, settings: dict[str, str], port: int, out: Path
) -> subprocess.Popen[bytes]:
    """``python -m bastion.server 1`` under callgrind, counting off, with ``bastion serve``'s
    environment (the benchmark's settings, the malloc tuning of ``exec_server``)."""
    from bastion.server import _MALLOC_TUNING  # noqa: PLC0415 - the served worker's tuning

    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    env.update(settings, BASTION_PORT=str(port), PYTHONHASHSEED="0")
    for name, value in _MALLOC_TUNING:
        env.setdefault(name, value)
    command = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
    command += [f"--callgrind-out-file={out}", sys.executable, "-m", "bastion.server", "1"]
    stderr = (data_dir / "valgrind.err").open("wb")
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)


def _settings_of(pid: int) -> dict[str, str]:
    """The ``BASTION_*`` settings a server started by ``start_bastion`` runs with (read from its
    environment, so both workers run with the same), but its port."""
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    pairs = (item.decode().split("=", 1) for item in raw if item.startswith(b"BASTION_"))
    return {name: value for name, value in pairs if name != "BASTION_PORT"}


def _wait_port(port: int, proc: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the worker exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit("the worker did not start")


def _wait_idle(pid: int, quiet: float = 3.0, within: float = 600) -> None:
    """Until the worker used no CPU for ``quiet`` seconds: what it started on its own (imports
    on first use, the hashing pool's first hash, slowed down by valgrind) is not counted."""
    deadline = time.monotonic() + within
    last = http.process_cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = http.process_cpu_seconds(pid)
        if now - last < 0.05:
            return
        last = now
    raise SystemExit("the worker never went idle")


def _control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], capture_output=True, check=True)


async def run(args: argparse.Namespace, data_dir: Path) -> None:
    server = http.start_bastion(data_dir)
    try:
        settings = _settings_of(server.pid)
        await create_user(server.port, data_dir, EMAIL)
        tokens = await new_sessions(server.port, args.connections)
        await chain_tokens(server.port, tokens, 40)
    finally:
        server.stop()
    port = http._free_port()  # noqa: SLF001 - the benchmark's own helper
    out = data_dir / "callgrind.out"
    worker = _worker(data_dir, settings, port, out)
    try:
        _wait_port(port, worker, 600)
        await chain_tokens(port, tokens, args.warmup)
        _wait_idle(worker.pid)
        pid = str(worker.pid)
        _control("-i", "on", pid)
        done = await chain_tokens(port, tokens, args.requests)
        await asyncio.sleep(2)  # the audit writer's last batch (50 ms, slowed by valgrind)
        _control("--dump", pid)
        _control("-i", "off", pid)
    finally:
        worker.terminate()
        worker.wait(timeout=120)
    dumped = out.with_name(out.name + ".1")
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        target = args.keep / f"callgrind.served-c{args.connections}.out"
        shutil.copy(dumped, target)
        print(f"kept {target}")
    text = dumped.read_text()
    summary = re.search(r"^summary: (\d+)", text, re.MULTILINE)
    cmd = re.search(r"^cmd: (.*)$", text, re.MULTILINE)
    if summary is None:
        raise SystemExit(f"no summary in {dumped}")
    print(f"cmd: {cmd.group(1) if cmd else '?'}")
    print(
        f"served refresh, C={args.connections}: {int(summary.group(1)) / done:,.0f}"
        f" instructions per rotation ({done} rotations)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--keep", type=Path)
    run_on_load_cpu(run, parser.parse_args())


if __name__ == "__main__":
    main()
