"""WAL frames (4 KiB pages appended to the WAL) per refresh rotation, and the b-trees they
belong to: what each rotation makes SQLite write, without timing anything.

The workload is :mod:`bench.identity.inprocess` (Bastion's app on SQLite, raw ASGI calls) with
``C`` sessions rotated round-robin (as ``C`` clients chaining their own tokens would). The WAL
checkpointer is given an unreachable threshold, so the WAL only grows: after a warm-up, the
frames appended by ``--rotations`` rotations are read from the WAL file's frame headers (page
number, commit marker) and each page is named with SQLite's ``dbstat`` table. Each frame is
written with two ``pwrite64`` (its 24-byte header, then the page). Usage::

    .venv/bin/python -m bench.identity.wal_frames [--sessions 1,32] [--rotations 640]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import sqlite3
import struct
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from bench.identity.inprocess import EMAIL, Workload, _login, call, settings_for

_WAL_HEADER = 32
_FRAME_HEADER = 24


def frames(wal: Path, start: int) -> tuple[list[tuple[int, int]], int]:
    """The (page number, commit size) of each whole frame from byte ``start``, and the end."""
    data = wal.read_bytes()
    page_size = struct.unpack(">I", data[8:12])[0]
    found = []
    offset = max(start, _WAL_HEADER)
    while offset + _FRAME_HEADER + page_size <= len(data):
        page, commit = struct.unpack(">II", data[offset : offset + 8])
        found.append((page, commit))
        offset += _FRAME_HEADER + page_size
    return found, offset


async def measure(sessions: int, rotations: int) -> None:
    from bastion import logging as bastion_logging  # noqa: PLC0415
    from bastion.app import create_app  # noqa: PLC0415
    from bastion.storage import migrate, wal  # noqa: PLC0415

    original = wal.WalCheckpointer.__init__

    def never(self: Any, path: Path, *, units: int = 0) -> None:  # noqa: ARG001
        original(self, path, units=10**12)

    wal.WalCheckpointer.__init__ = never  # type: ignore[method-assign]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            data_dir = Path(tmp)
            settings = settings_for(data_dir)
            bastion_logging.configure(settings.log_level, json=settings.log_json)
            await migrate.upgrade(settings.effective_database_url)
            app = create_app(settings)
            async with app.router.lifespan_context(app):
                work = Workload(app)
                await work.prepare(data_dir)
                tokens = [(await _login(app, EMAIL))["refresh_token"] for _ in range(sessions)]

                async def rotate(rounds: int) -> None:
                    for _ in range(rounds):
                        for i, token in enumerate(tokens):
                            body = {"refresh_token": token}
                            status, answer = await call(app, "POST", "/v1/sessions/refresh", body)
                            if status != 200:
                                raise SystemExit(f"refresh: {status} {answer[:300]!r}")
                            tokens[i] = json.loads(answer)["refresh_token"]
                    await work.drain()

                await rotate(max(1, 300 // sessions))
                database = Path(str(make_url(settings.effective_database_url).database))
                wal_file = database.with_name(database.name + "-wal")
                _, start = frames(wal_file, 0)
                rounds = max(1, rotations // sessions)
                await rotate(rounds)
                written, _ = frames(wal_file, start)
                with sqlite3.connect(database) as reader:
                    names = dict(reader.execute("SELECT pageno, name FROM dbstat"))
    finally:
        wal.WalCheckpointer.__init__ = original  # type: ignore[method-assign]
    done = rounds * sessions
    commits = sum(1 for _, commit in written if commit)
    print(
        f"C={sessions}: {len(written) / done:.2f} frames a rotation"
        f" ({commits / done:.2f} commits a rotation, {done} rotations)"
    )
    by_tree = collections.Counter(names.get(page, f"page {page}") for page, _ in written)
    for name, count in by_tree.most_common():
        print(f"   {name:40s} {count / done:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", default="1,32", help="sessions rotated round-robin")
    parser.add_argument("--rotations", type=int, default=640)
    args = parser.parse_args()
    for sessions in args.sessions.split(","):
        asyncio.run(measure(int(sessions), args.rotations))


if __name__ == "__main__":
    main()
