"""Instructions per stored row of the audit insert, by the indexes of ``audit_events``.

Each count runs a process under callgrind that creates ``audit_events`` in a fresh SQLite file
(WAL) with one set of indexes, then inserts rows of one shape as the database sink does (the
sink's column order, ``executemany`` of 50 rows, one transaction per 200); the count per row is
the difference between 2,000 and 8,000 rows divided by 6,000 (setup and start-up cancel out).

Index sets: ``head`` (the models' indexes, the four on optional columns partial since
migration 0012), ``full`` (the same indexes without their conditions, as before 0012), ``none``.
Row shapes: ``decision`` (a denied check: every optional column set) and ``rejected`` (a
rejected request: no actor, no subject).

Usage: ``.venv/bin/python -m bench.audit.indexes [--sets head full none] [--rows decision
rejected]``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy.dialects import sqlite
from sqlalchemy.schema import CreateIndex, CreateTable

from bench.audit.common import machine

SETS = ("head", "full", "none")
ROWS = ("decision", "rejected")
_SMALL, _LARGE = 2000, 8000
_CHUNK, _BATCH = 50, 200


def _schema(index_set: str) -> list[str]:
    from bastion.audit.models import audit_events  # noqa: PLC0415

    dialect = sqlite.dialect()
    statements = [str(CreateTable(audit_events).compile(dialect=dialect))]
    if index_set == "none":
        return statements
    for index in sorted(audit_events.indexes, key=lambda ix: str(ix.name)):
        sql = str(CreateIndex(index).compile(dialect=dialect))
        if index_set == "full":
            sql = re.sub(r" WHERE .*$", "", sql)
        statements.append(sql)
    return statements


def _row(n: int, shape: str) -> tuple[Any, ...]:
    stamp = f"2026-11-29 06:{n // 60000 % 60:02d}:{n // 1000 % 60:02d}.{n % 1000 * 1000:06d}"
    request_id = f"{n * 2654435761 % 2**64:032x}"
    mac = f"{n * 11400714819323198485 % 2**256:064x}"
    if shape == "decision":
        details = {"store_id": "01JDQ8ZK3V6Y2W9X4T5R7M8N0P", "object": f"document:d{n}"}
        return (
            stamp,
            "authz:check:denied",
            "failure",
            "user:01JDQ8ZK5K6M7N8P9Q0R1S2T3V",
            f"document:d{n % 5000}#viewer@user:u{n % 300}",
            "127.0.0.1",
            None,
            request_id,
            "no_relationship",
            json.dumps(details),
            n + 1,
            mac,
            "0a1b2c3d",
        )
    rejected = {"method": "POST", "path": "/v1/x", "status": 400}
    return (
        stamp,
        "http:request:rejected",
        "failure",
        None,
        None,
        f"10.0.{n % 250}.{n % 7}",
        "curl/8",
        request_id,
        "invalid_json",
        json.dumps(rejected),
        n + 1,
        mac,
        "0a1b2c3d",
    )


_INSERT = (
    "INSERT INTO audit_events (time, type, outcome, actor, subject, client_ip, user_agent,"
    " request_id, reason, details, seq, mac, key_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


def _drive(index_set: str, shape: str, n: int) -> None:
    with tempfile.TemporaryDirectory() as name:
        database = sqlite3.connect(Path(name) / "bench.db", isolation_level=None)
        database.execute("PRAGMA journal_mode=WAL")
        database.execute("PRAGMA synchronous=NORMAL")
        for statement in _schema(index_set):
            database.execute(statement)
        rows = [_row(i, shape) for i in range(n)]
        for start in range(0, n, _BATCH):
            database.execute("BEGIN")
            for chunk in range(start, min(n, start + _BATCH), _CHUNK):
                database.executemany(_INSERT, rows[chunk : chunk + _CHUNK])
            database.execute("COMMIT")
        database.close()


def _count(index_set: str, shape: str, n: int) -> int:
    with tempfile.TemporaryDirectory() as name:
        out = Path(name) / "callgrind.out"
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable]
        command += ["-m", "bench.audit.indexes", "--drive", index_set, shape, str(n)]
        subprocess.run(command, check=True, capture_output=True)
        match = re.search(r"^summary: (\d+)", out.read_text(), re.MULTILINE)
        if match is None:
            raise SystemExit(f"no summary in {out}")
        return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sets", nargs="*", choices=SETS, default=list(SETS))
    parser.add_argument("--rows", nargs="*", choices=ROWS, default=list(ROWS))
    parser.add_argument("--drive", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        index_set, shape, n = args.drive
        _drive(index_set, shape, int(n))
        return
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is missing: apt-get install -y valgrind")
    print(f"run: {machine()}")
    print(f"instructions per row ({_LARGE} rows minus {_SMALL}, divided by the difference)")
    for shape in args.rows:
        for index_set in args.sets:
            small, large = _count(index_set, shape, _SMALL), _count(index_set, shape, _LARGE)
            print(f"  {shape:9} {index_set:5} {(large - small) / (_LARGE - _SMALL):10,.0f}")


if __name__ == "__main__":
    main()
