"""The test server helper stops `bastion serve --workers 2` with every worker it spawned.

Killing only the parent (as the helper once did when a server failed to start) left the
workers running after the test; now the server leads a process group of its own and the helper
stops the whole group, so no process of it remains, whichever way the server ended.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from tests.common import server as server_module
from tests.common.server import (
    STARTUP_SECONDS,
    LiveServer,
    process_group_alive,
    start_server,
    stop_server,
)

pytestmark = pytest.mark.slow


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, process group id) of a live process, None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # Fields after the command name (which may hold spaces): state, ppid, pgrp, ...
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[1]), int(fields[2])


def _workers(parent: int) -> set[int]:
    """The uvicorn workers a server spawned (its resource tracker, also a child, aside)."""
    pids = (int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit())
    children = {pid for pid in pids if (stat := _stat(pid)) is not None and stat[0] == parent}
    return {pid for pid in children if b"spawn_main" in _cmdline(pid)}


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return b""


def _wait_for_workers(parent: int, count: int = 2) -> set[int]:
    deadline = time.monotonic() + STARTUP_SECONDS
    while len(workers := _workers(parent)) < count:
        assert time.monotonic() < deadline, f"{count} workers of {parent} never started"
        time.sleep(0.1)
    return workers


def _assert_all_gone(pgid: int) -> None:
    """No process of the group remains, not even a zombie waiting to be reaped."""
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)


def _kill_leftovers(pgid: int) -> None:
    """Cleanup after a failed assertion, so this test cannot leak what it tests for."""
    if process_group_alive(pgid):
        os.killpg(pgid, signal.SIGKILL)


def _start_two_workers(tmp_path: Path) -> tuple[LiveServer, int]:
    server = start_server(tmp_path, "--workers", "2")
    pgid = os.getpgid(server.process.pid)
    # The server leads its own group: signalling it cannot reach the test runner.
    assert pgid == server.process.pid != os.getpgrp()
    workers = _wait_for_workers(server.process.pid)
    assert {_stat(pid) for pid in workers} == {(server.process.pid, pgid)}
    return server, pgid


def test_stopping_a_two_worker_server_leaves_no_process_of_its_group(tmp_path: Path) -> None:
    server, pgid = _start_two_workers(tmp_path)
    try:
        stop_server(server)
    finally:
        _kill_leftovers(pgid)
    assert server.process.returncode is not None  # the parent is reaped
    _assert_all_gone(pgid)


def test_workers_orphaned_by_a_killed_parent_are_stopped_too(tmp_path: Path) -> None:
    server, pgid = _start_two_workers(tmp_path)
    try:
        # What the helper once did when a server did not start in time: kill the parent alone.
        server.process.kill()
        server.process.wait()
        time.sleep(0.5)
        assert process_group_alive(pgid), "the orphaned workers kept running"
        stop_server(server)
    finally:
        _kill_leftovers(pgid)
    _assert_all_gone(pgid)


def test_a_server_that_does_not_start_in_time_is_stopped_with_its_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[subprocess.Popen[bytes]] = []
    workers: set[int] = set()
    real_popen = subprocess.Popen

    def popen(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        started.append(real_popen(*args, **kwargs))
        return started[-1]

    def never_listening(*_args: object, **_kwargs: object) -> None:
        # The port never answers, but only once the workers run: they are what must not leak.
        workers.update(_wait_for_workers(started[0].pid))
        raise OSError("refused (test)")

    monkeypatch.setattr(subprocess, "Popen", popen)
    monkeypatch.setattr(socket, "create_connection", never_listening)
    monkeypatch.setattr(server_module, "STARTUP_SECONDS", 0.5)
    try:
        with pytest.raises(RuntimeError, match="did not start within"):
            start_server(tmp_path, "--workers", "2")
    finally:
        monkeypatch.undo()
        for process in started:
            _kill_leftovers(process.pid)
    (process,) = started
    assert process.returncode is not None
    assert len(workers) == 2
    _assert_all_gone(process.pid)
