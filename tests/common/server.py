"""A real `bastion serve` in a subprocess, for tests that need real sockets and processes."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BASTION = str(Path(sys.executable).with_name("bastion"))
#: How long a server may take to start: generous, because a loaded two-core machine (parallel
#: test workers, other servers starting) makes imports and migrations several times slower.
#: A bound on startup, not a performance assertion.
STARTUP_SECONDS = 120
#: How long a stopped server (and each of its workers) may take to shut down gracefully.
STOP_SECONDS = 10


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bastion_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    env.update({"BASTION_DATA_DIR": str(data_dir), "BASTION_LOG_LEVEL": "warning"})
    env.update(extra)
    return env


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen[bytes]
    stderr_path: Path

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def start_server(
    data_dir: Path,
    *args: str,
    scheme: str = "http",
    startup_seconds: float | None = None,
    **env: str,
) -> LiveServer:
    """Start `bastion serve` and wait until its port accepts connections.

    The server leads a session and process group of its own, so its uvicorn workers can be
    stopped with it (:func:`kill_process_group`) even when the parent dies first or never
    answers: killing the parent alone left `--workers` processes running after the test.
    ``startup_seconds`` (default :data:`STARTUP_SECONDS`) bounds the wait for the port.
    """
    port = free_port()
    stderr_path = data_dir / f"serve-{port}.err"
    data_dir.mkdir(parents=True, exist_ok=True)
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(  # noqa: S603 - our own CLI
            [BASTION, "serve", "--port", str(port), *args],
            env=bastion_env(data_dir, **env),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    url = f"{scheme}://127.0.0.1:{port}"
    startup_seconds = STARTUP_SECONDS if startup_seconds is None else startup_seconds
    deadline = time.monotonic() + startup_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            kill_process_group(process)  # anything it spawned before exiting
            raise RuntimeError(f"bastion serve exited early:\n{stderr_path.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return LiveServer(url, process, stderr_path)
        except OSError:
            time.sleep(0.1)
    kill_process_group(process)  # reaped here, not left running into the next test
    raise RuntimeError(
        f"bastion serve did not start within {startup_seconds} s:\n{stderr_path.read_text()}"
    )


def process_group_alive(pgid: int) -> bool:
    """Whether any process (a zombie not yet reaped included) remains in the group."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # the whole group has exited already
        os.killpg(pgid, signum)


def kill_process_group(process: subprocess.Popen[bytes]) -> None:
    """Stop a process started with ``start_new_session=True`` and everything it spawned.

    SIGTERM to the whole group (uvicorn's parent and workers shut down gracefully), then
    SIGKILL to whatever is left after :data:`STOP_SECONDS`. The parent is reaped here; its
    workers are reaped by the parent or, orphaned by its death, by init: wait for that, so
    no process of the group outlives the call.
    """
    pgid = process.pid  # a session leader's process group id is its pid
    _signal_group(pgid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_SECONDS)
    # The group id cannot be reused while any member exists, so this reaches only stragglers.
    _signal_group(pgid, signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + STOP_SECONDS
    while process_group_alive(pgid):
        if time.monotonic() > deadline:
            raise RuntimeError(f"process group {pgid} still has members after SIGKILL")
        _signal_group(pgid, signal.SIGKILL)
        time.sleep(0.05)


def stop_server(server: LiveServer) -> None:
    kill_process_group(server.process)
