"""The callgrind harness shared by the ``bench.*.instructions`` benchmarks.

A measuring process starts the benchmark module again under ``valgrind --tool=callgrind`` with
counting off (``--drive ...`` arguments, the module's own driver mode). The driver warms up,
writes its pid to ``flags/ready`` and waits for ``flags/go``; the measurer switches counting on
and touches ``go``; the driver runs ``n`` requests (and lets background writers finish), touches
``flags/done`` and waits for ``flags/stop``; the measurer dumps the counts while counting is
still on (the file written at exit would only hold what came after a dump) and touches ``stop``.
Instruction counts do not move with the machine's load, unlike timings.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["command_line", "count", "done", "ready", "wait_for"]


def wait_for(flag: Path) -> None:
    """Driver side: block until the measurer touches ``flag``."""
    while not flag.exists():
        time.sleep(0.05)


def ready(flags: Path) -> None:
    """Driver side: warmed up; returns once counting is on."""
    # Written whole, then renamed: the measurer reads the pid as soon as ``ready`` exists.
    partial = flags / "ready.partial"
    partial.write_text(str(os.getpid()))
    partial.replace(flags / "ready")
    wait_for(flags / "go")


def done(flags: Path) -> None:
    """Driver side: measured work finished; returns once the counts are dumped."""
    (flags / "done").touch()
    wait_for(flags / "stop")


def count(
    module: str,
    drive: Sequence[str],
    n: int,
    *,
    extra: Sequence[str] = (),
    keep: Path | None = None,
    label: str = "",
    timeout: float = 900,
) -> float:
    """Instructions per request: ``python -m module --drive *drive <n> <flags> *extra`` under
    callgrind, counted between the driver's ``ready`` and ``done``, divided by ``n``. The
    callgrind file is copied into ``keep`` (as ``callgrind.<label>.out``) when given."""
    with tempfile.TemporaryDirectory() as name:
        flags = Path(name)
        out = flags / "callgrind.out"
        command = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
        command += [f"--callgrind-out-file={out}", sys.executable, "-m", module]
        command += ["--drive", *drive, str(n), str(flags), *extra]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        proc = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            for flag, control in (("ready", ["-i", "on"]), ("done", ["--dump"])):
                while not (flags / flag).exists():
                    if proc.poll() is not None:
                        raise SystemExit(f"{label}: the driver exited with {proc.returncode}")
                    time.sleep(0.2)
                pid = (flags / "ready").read_text()
                subprocess.run(
                    ["callgrind_control", *control, pid], capture_output=True, check=True
                )
                (flags / ("go" if flag == "ready" else "stop")).touch()
            proc.wait(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
        dumped = out.with_name(out.name + ".1")
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(dumped, keep / f"callgrind.{label}.out")
        match = re.search(r"^summary: (\d+)", dumped.read_text(), re.MULTILINE)
        if match is None:
            raise SystemExit(f"no summary in {dumped}")
        return int(match.group(1)) / n


def command_line(
    module: str,
    description: str,
    targets: Sequence[str],
    drive: Callable[[str, int, Path], None],
    *,
    requests: int,
) -> None:
    """The command line of an instruction-count benchmark: ``[TARGET ...] [--requests N]``
    counts each target (default all) in a fresh process under callgrind and prints its
    instructions per request; the internal ``--drive TARGET N FLAGS`` is that process, which
    runs ``drive(target, n, flags)`` (warm up, :func:`ready`, the ``n`` requests, :func:`done`)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("targets", nargs="*", help=f"some of {', '.join(targets)} (default all)")
    parser.add_argument("--requests", type=int, default=requests)
    parser.add_argument("--drive", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        target, n, flags = args.drive
        drive(target, int(n), Path(flags))
        return
    unknown = set(args.targets) - set(targets)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is missing: apt-get install -y valgrind")
    print(f"{args.requests} requests per target, instructions per request (all threads)")
    for target in args.targets or targets:
        value = count(module, [target], args.requests, label=target)
        print(f"  {target:<12} {value:14,.0f}")
