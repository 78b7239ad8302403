"""ReBAC at scale through the SQL store and the service, on SQLite and PostgreSQL.

The data of :mod:`bench.authz.rebac` (1,000,000 tuples by default; ``--tuples 100000`` scales
every population down by the same factor) is bulk-loaded into a fresh, migrated database
(SQLite in a temporary directory; a throwaway PostgreSQL database on ``--postgres-url``, dropped
after) with multi-row inserts through SQLAlchemy Core, 20,000 rows a statement in one
transaction, as a restore would: tuples only, no changelog. Then, through
:class:`~bastion.authz.service.AuthzService` (the product's path: model cache, per-store
in-memory index, decision log):

- the first check, which loads the store's index from the database (cold);
- random checks p50/p99 with ``MINIMIZE_LATENCY`` (the warm index; a changelog poll at most
  once a second) and with ``HIGHER_CONSISTENCY`` (two indexed queries before each check: the
  latest model and the changes beyond the index's position);
- ListObjects ``document#viewer`` for an all-staff member (every document of an organization)
  and an ordinary member.

Wall-clock and thread CPU time are both reported (the machine is shared). Usage:
``.venv/bin/python -m bench.authz.rebac_sql [--tuples 1000000] [--backend sqlite postgres]``.
Target (issue 6): check p99 under 1 ms warm.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path

import asyncpg
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url

from bastion.audit.events import AuditEvent
from bastion.authz.model import parse_dsl
from bastion.authz.service import AuthzService, CheckRequest, Consistency, RequestInfo
from bastion.authz.store import SqlAuthzStore
from bastion.authz.store.models import authz_tuples
from bastion.authz.tuples import Tuple
from bastion.clock import SystemClock
from bastion.storage import Database
from bastion.storage.migrate import upgrade
from bench.authz.rebac import MODEL, build, row, sizes

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
ROWS_PER_STATEMENT = 20_000
INFO = RequestInfo(source="bench")


class DiscardAudit:
    """An audit recorder that drops events (the decision log still builds each one)."""

    def record(self, event: AuditEvent) -> None:
        del event

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


@contextlib.asynccontextmanager
async def database_url(backend: str, admin_url: str) -> AsyncIterator[str]:
    """An empty database: a SQLite file in a temporary directory, or a throwaway PostgreSQL
    database (its name is hex digits generated here, so formatting it into DDL is safe)."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite+aiosqlite:///{Path(tmp) / 'bastion.db'}"
        return
    name = f"bastion_bench_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(admin_url, timeout=5)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = make_url(admin_url).set(drivername="postgresql+asyncpg", database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def bulk_load(database: Database, store_id: str, tuples: Sequence[Tuple]) -> None:
    """Every tuple in one transaction, ``ROWS_PER_STATEMENT`` rows per multi-row INSERT."""
    now = SystemClock().now()
    async with database.engine.begin() as conn:
        for start in range(0, len(tuples), ROWS_PER_STATEMENT):
            rows = [
                {
                    "store_id": store_id,
                    "object_type": t.object_type,
                    "object": t.object,
                    "relation": t.relation,
                    "user": t.user,
                    "condition_name": None,
                    "condition_context": None,
                    "created_at": now,
                }
                for t in tuples[start : start + ROWS_PER_STATEMENT]
            ]
            await conn.execute(insert(authz_tuples), rows)
    async with database.engine.begin() as conn:
        await conn.execute(text("ANALYZE"))


async def timed(call: Callable[[], Awaitable[object]], count: int) -> tuple[list[int], list[int]]:
    clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    wall, cpu = [], []
    for _ in range(count):
        c0 = cpu_clock()
        t0 = clock()
        await call()
        wall.append(clock() - t0)
        cpu.append(cpu_clock() - c0)
    return wall, cpu


def queries(
    tuples: Sequence[Tuple], doc_viewers: dict[str, list[str]], total: int, checks: int, seed: int
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Random pairs (mostly denied) and pairs granted through a folder team (as in rebac)."""
    _, users, _, documents = sizes(total)
    rng = random.Random(seed + 1)
    random_pairs = [
        (f"document:{rng.randrange(documents)}", f"user:{rng.randrange(users)}")
        for _ in range(checks)
    ]
    members: dict[str, list[str]] = {}
    for t in tuples:
        if t.relation == "member" and t.user.startswith("user:"):
            members.setdefault(t.object, []).append(t.user)
    granted_pairs = []
    for _ in range(checks):
        doc = f"document:{rng.randrange(documents)}"
        granted_pairs.append((doc, rng.choice(members[rng.choice(doc_viewers[doc])])))
    return random_pairs, granted_pairs


async def measure(backend: str, args: argparse.Namespace) -> None:
    tuples, doc_viewers = build(args.seed, args.tuples)
    random_pairs, granted_pairs = queries(tuples, doc_viewers, args.tuples, args.checks, args.seed)
    _, users, _, documents = sizes(args.tuples)
    async with database_url(backend, args.postgres_url) as url:
        await upgrade(url)
        database = Database(url)
        try:
            store = SqlAuthzStore(database)
            authz = AuthzService(
                store,
                audit=DiscardAudit(),
                clock=SystemClock(),
                staleness_seconds=1.0,
                max_cached_stores=4,
                decision_sample_rate=1.0,
            )
            record = await authz.create_store("bench", INFO)
            await authz.write_model(record.id, parse_dsl(MODEL), INFO)
            t0 = time.perf_counter()
            await bulk_load(database, record.id, tuples)
            loaded = time.perf_counter() - t0
            count = len(tuples)
            del tuples
            t0 = time.perf_counter()
            first = CheckRequest(random_pairs[0][0], "viewer", random_pairs[0][1])
            await authz.check(record.id, first, consistency=Consistency.MINIMIZE_LATENCY, info=INFO)
            cold = time.perf_counter() - t0
            print(
                f"# {backend}: {count:,} tuples bulk-loaded in {loaded:.1f} s; first check "
                f"(loads the index from the database) {cold:.1f} s; load "
                f"{os.getloadavg()[0]:.2f}"
            )
            await run_checks(authz, record.id, random_pairs, granted_pairs, args.checks)
            for user, label in (("user:0", "all-staff member"), (f"user:{users - 1}", "ordinary")):
                start, cpu_start = time.perf_counter(), time.thread_time()
                page = await authz.list_objects(
                    record.id,
                    "document",
                    "viewer",
                    user,
                    consistency=Consistency.MINIMIZE_LATENCY,
                )
                elapsed, cpu = time.perf_counter() - start, time.thread_time() - cpu_start
                print(
                    f"ListObjects document#viewer, {label}: {len(page.items):,} of "
                    f"{documents:,} documents in {elapsed * 1000:,.0f} ms "
                    f"({cpu * 1000:,.0f} ms CPU)"
                )
        finally:
            await database.dispose()


async def run_checks(
    authz: AuthzService,
    store_id: str,
    random_pairs: list[tuple[str, str]],
    granted_pairs: list[tuple[str, str]],
    checks: int,
) -> None:
    columns = ("checks", "allowed", "p50 us", "p99 us", "max us", "cpu p50", "cpu p99")
    print(f"{'case':44} " + " ".join(f"{c:>8}" for c in columns))
    consistent = max(checks // 4, 100)  # two queries each: fewer suffice
    for consistency, label, n in (
        (Consistency.MINIMIZE_LATENCY, "warm", checks),
        (Consistency.HIGHER_CONSISTENCY, "higher", consistent),
    ):
        for name, pairs in (("random", random_pairs[:n]), ("granted", granted_pairs[:n])):
            requests = iter([CheckRequest(d, "viewer", u) for d, u in pairs])
            allowed = [0]

            async def one(
                requests: Iterator[CheckRequest] = requests,
                consistency: Consistency = consistency,
                allowed: list[int] = allowed,
            ) -> None:
                outcome = await authz.check(
                    store_id, next(requests), consistency=consistency, info=INFO
                )
                allowed[0] += outcome.allowed

            samples = await timed(one, len(pairs))
            row(
                f"check {name}, {label} ({consistency.value})", len(pairs), str(allowed[0]), samples
            )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tuples", type=int, default=1_000_000)
    parser.add_argument("--checks", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument(
        "--backend", nargs="+", choices=("sqlite", "postgres"), default=["sqlite", "postgres"]
    )
    parser.add_argument("--postgres-url", default=POSTGRES_URL)
    args = parser.parse_args(argv)
    print(f"# ReBAC through the SQL store: {args.tuples:,} tuples; uptime load {os.getloadavg()}")
    for backend in args.backend:
        asyncio.run(measure(backend, args))


if __name__ == "__main__":
    main()
