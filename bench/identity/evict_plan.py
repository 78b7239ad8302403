"""A login's eviction of sessions beyond the per-user limit, on SQLite: its query plan and its
CPU per login as other users' live sessions grow (diagnostic).

One user with 100 live and 3,000 ended sessions, ``--others`` other users with one live
session each; each iteration inserts a session and runs ``EVICT_BEYOND_LIMIT`` (one session
evicted) in a transaction rolled back, so every iteration sees the same table. ``--variant
pk`` was the statement with its outer ``revoked_at IS NULL`` written ``+revoked_at IS NULL``
(SQLite then cannot use ``ix_sessions_revoked_at`` for it); the statement now writes that check
as ``coalesce(revoked_at, NULL) IS NULL`` to the same effect, so ``main`` is that variant and
``pk`` changes nothing more. ``covering`` adds ``absolute_expires_at`` to
``ix_sessions_user_live``; ``both`` does both. Usage::

    .venv/bin/python -m bench.identity.evict_plan [--variant main|pk|covering|both]
        [--others 10000] [--iterations 1000]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.dialects import sqlite

import bastion.identity.accounts.models
import bastion.identity.sessions.models  # noqa: F401 - the tables, for create_all
from bastion.identity.sessions._statements import EVICT_BEYOND_LIMIT
from bastion.storage.base import Base

_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
_NOW = datetime(2026, 11, 29, 8, 0, 0)  # noqa: DTZ001 - SQLite's naive UTC text
_SESSION = (
    "INSERT INTO sessions (id, user_id, created_at, last_seen_at, absolute_expires_at, amr,"
    " acr, transport, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_USER = "INSERT INTO users VALUES (?, ?, ?, 'd', 'h', 0, 1, 0, ?, ?, NULL)"


def _text(value: datetime) -> str:
    return value.strftime(_FORMAT)


def _add(connection: sqlite3.Connection, second: int, user: str, *, revoked: bool) -> None:
    at = _text(_NOW + timedelta(seconds=second))
    until = _text(_NOW + timedelta(days=30))
    row = (str(uuid.uuid4()), user, at, at, until, '["pwd"]', "aal1", "bearer")
    connection.execute(_SESSION, (*row, at if revoked else None))


def run(variant: str, others: int, iterations: int, folder: Path) -> tuple[list[Any], float]:
    """The outer statement's plan and the CPU seconds per insert and eviction."""
    path = folder / f"evict-{variant}.db"
    engine = create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    engine.dispose()
    compiled = EVICT_BEYOND_LIMIT.compile(dialect=sqlite.dialect())
    sql = compiled.string
    if variant in ("pk", "both"):
        sql = sql.replace(
            "AND sessions.revoked_at IS NULL RETURNING",
            "AND +sessions.revoked_at IS NULL RETURNING",
        )
    values = {"uid": "u", "now": _text(_NOW), "keep": 100, "reason": "x", "param_1": -1}
    parameters = tuple(values[name] for name in compiled.positiontup or ())
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    if variant in ("covering", "both"):
        connection.execute("DROP INDEX ix_sessions_user_live")
        connection.execute(
            "CREATE INDEX ix_sessions_user_live ON sessions"
            " (user_id, created_at, id, absolute_expires_at) WHERE revoked_at IS NULL"
        )
    connection.execute("BEGIN")
    connection.execute(_USER, ("u", "u", "u", _text(_NOW), _text(_NOW)))
    for second in range(3000):
        _add(connection, second, "u", revoked=True)
    for second in range(3000, 3100):
        _add(connection, second, "u", revoked=False)
    for other in range(others):
        connection.execute(_USER, (f"o{other}", f"o{other}", f"o{other}", _text(_NOW), _text(_NOW)))
        _add(connection, other, f"o{other}", revoked=False)
    connection.execute("COMMIT")
    plan = connection.execute("EXPLAIN QUERY PLAN " + sql, parameters).fetchall()
    start = time.thread_time()
    for iteration in range(iterations):
        connection.execute("BEGIN")
        _add(connection, 5000 + iteration, "u", revoked=False)
        evicted = connection.execute(sql, parameters).fetchall()
        if len(evicted) != 1:
            raise SystemExit(f"expected one session evicted, got {evicted}")
        connection.execute("ROLLBACK")
    spent = (time.thread_time() - start) / iterations
    connection.close()
    return plan, spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=("main", "pk", "covering", "both"), default="main")
    parser.add_argument("--others", type=int, default=0)
    parser.add_argument("--iterations", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        plan, spent = run(args.variant, args.others, args.iterations, Path(folder))
    for step in plan:
        print("plan:", step[-1])
    print(f"{args.variant}, {args.others} other live sessions: {spent * 1e6:.1f} us per login")


if __name__ == "__main__":
    main()
