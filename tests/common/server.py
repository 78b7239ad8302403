"""A real `bastion serve` in a subprocess, for tests that need real sockets and processes."""

from __future__ import annotations

import os
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


def start_server(data_dir: Path, *args: str, scheme: str = "http", **env: str) -> LiveServer:
    port = free_port()
    stderr_path = data_dir / f"serve-{port}.err"
    data_dir.mkdir(parents=True, exist_ok=True)
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(  # noqa: S603 - our own CLI
            [BASTION, "serve", "--port", str(port), *args],
            env=bastion_env(data_dir, **env),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    url = f"{scheme}://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"bastion serve exited early:\n{stderr_path.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return LiveServer(url, process, stderr_path)
        except OSError:
            time.sleep(0.1)
    process.kill()
    process.wait()  # reaped here, not left running into the next test's warnings
    raise RuntimeError(
        f"bastion serve did not start within {STARTUP_SECONDS} s:\n{stderr_path.read_text()}"
    )


def stop_server(server: LiveServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
