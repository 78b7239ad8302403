"""HTTP check throughput: ``POST /stores/{id}/check`` on one ``bastion serve`` worker against a
bare FastAPI endpoint answering a trivial JSON POST, in the same run.

As in :mod:`bench.identity.http`: the servers are pinned to CPU 0 and ``wrk`` to CPU 1. The store
holds the ReBAC data of :mod:`bench.authz.rebac` (``--tuples``, 1,000,000 by default), bulk-loaded
into the server's database before it starts (:func:`bench.authz.rebac_sql.bulk_load`): a SQLite
file, or with ``--backend postgres`` a throwaway PostgreSQL database on ``--postgres-url``
(dropped at the end; PostgreSQL's own processes are not pinned to a CPU). The
first check loads the worker's in-memory index and is not timed. The caller is a service account
in ``BASTION_AUTHZ`` ``query_users`` with a bearer token from ``POST /v1/sessions``. Every limit
stays in the stack (its cost is measured) with budgets above the load, set for this run only.

The load is a ``wrk`` Lua script that sends, round robin, ``--pairs`` different checks (random
document/user pairs, mostly denied, or with ``--granted`` pairs granted through a folder
team; ``MINIMIZE_LATENCY``) with the bearer header; the bare app
gets the same bodies and headers on its own ``POST /check`` (a pydantic body, a JSON answer). For
reference, ``GET /v1/account`` with the same token is measured too: the cost of any
authenticated request through Bastion's stack, before the authorization API does anything.
Usage: ``.venv/bin/python -m bench.authz.http [--tuples 1000000] [--duration 10] [--rounds 3]
[--pairs 1000] [--backend sqlite|postgres]``.
Target (issue 6): check req/s at least 0.5x the bare endpoint's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fastapi import FastAPI
from pydantic import BaseModel

from bastion.authz.model import parse_dsl
from bastion.authz.service import AuthzService
from bastion.authz.store import SqlAuthzStore
from bastion.clock import SystemClock
from bastion.storage import Database
from bastion.storage.migrate import upgrade
from bench.authz.rebac import MODEL, build
from bench.authz.rebac_sql import (
    INFO,
    POSTGRES_URL,
    DiscardAudit,
    bulk_load,
    database_url,
    queries,
)
from bench.identity.http import (
    CAN_PIN,
    LOAD_CPU,
    Connection,
    Server,
    _pin,
    _start,
    create_user,
    login,
)

TARGET_RATIO = 0.5
LIMITS = ("login", "registration", "email-verification", "token", "api-ip", "api-user")
_LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


# -- the bare endpoint -------------------------------------------------------------------------
class _Key(BaseModel):
    user: str
    relation: str
    object: str


class _Body(BaseModel):
    tuple_key: _Key
    consistency: str = "UNSPECIFIED"


def bare() -> FastAPI:
    """A bare FastAPI app: ``POST /check`` parses the same body and answers a small JSON."""
    app = FastAPI()

    @app.post("/check")
    async def check(body: _Body) -> dict[str, object]:
        return {"allowed": body.tuple_key.user == body.tuple_key.object, "resolution": ""}

    return app


# -- setup -------------------------------------------------------------------------------------
async def load_store(
    url: str, total: int, seed: int, pairs: int
) -> tuple[str, list[tuple[str, str]], list[tuple[str, str]]]:
    """Migrate, create the store and its model, bulk-load the tuples; the store's id, random
    (mostly denied) and granted (document, user) pairs."""
    await upgrade(url)
    database = Database(url)
    try:
        authz = AuthzService(
            SqlAuthzStore(database),
            audit=DiscardAudit(),
            clock=SystemClock(),
            staleness_seconds=1.0,
            max_cached_stores=4,
            decision_sample_rate=1.0,
        )
        record = await authz.create_store("bench", INFO)
        await authz.write_model(record.id, parse_dsl(MODEL), INFO)
        tuples, doc_viewers = build(seed, total)
        await bulk_load(database, record.id, tuples)
        random_pairs, granted_pairs = queries(tuples, doc_viewers, total, pairs, seed + 2)
        return record.id, random_pairs, granted_pairs
    finally:
        await database.dispose()


def start_bastion(
    data_dir: Path,
    query_users: list[str],
    sample_rate: float = 1.0,
    *,
    denial_burst: bool = True,
    database_url: str | None = None,
) -> Server:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    if database_url is not None:
        env["BASTION_DATABASE_URL"] = database_url
    env.update(
        BASTION_DATA_DIR=str(data_dir),
        BASTION_SECRET_KEY="b" * 48,
        BASTION_MAILER="file",
        BASTION_LOG_LEVEL="warning",
        BASTION_RATELIMIT=json.dumps(
            {"policies": {name: {"limit": 10_000_000} for name in LIMITS}}
        ),
        BASTION_AUTHZ=json.dumps({"query_users": query_users, "decision_sample_rate": sample_rate}),
    )
    if not denial_burst:
        env["BASTION_MONITORING"] = json.dumps({"denial_burst": {"enabled": False}})
    command = [str(Path(sys.executable).with_name("bastion")), "serve"]
    return _start("bastion", command, data_dir, env)


def start_bare(data_dir: Path) -> Server:
    command = [sys.executable, "-m", "uvicorn", "bench.authz.http:bare", "--factory",
               "--log-level", "warning", "--no-access-log", "--no-server-header"]  # fmt: skip
    return _start("bare", command, data_dir, dict(os.environ))


async def service_account(port: int, data_dir: Path) -> str:
    """Register and verify an account; its user id."""
    email = "bench-authz@example.com"
    await create_user(port, data_dir, email)
    async with Connection(port) as connection:
        access = (await login(connection, email))["access_token"]
        status, data = await connection.request(
            "GET", "/v1/account", headers={"Authorization": f"Bearer {access}"}
        )
    if status != 200:
        raise SystemExit(f"GET /v1/account: {status} {data[:300]!r}")
    return str(json.loads(data)["id"])


async def fresh_token(port: int, check_path: str, body: str) -> dict[str, str]:
    """A bearer header with a fresh token (they live 5 minutes), after one untimed check."""
    async with Connection(port) as connection:
        access = (await login(connection, "bench-authz@example.com"))["access_token"]
        headers = {"Authorization": f"Bearer {access}"}
        status, data = await connection.request("POST", check_path, json.loads(body), headers)
    if status != 200:
        raise SystemExit(f"check: {status} {data[:300]!r}")
    return headers


# -- the load ----------------------------------------------------------------------------------
def lua_script(
    path: Path, target: str, bodies: list[str], headers: dict[str, str], method: str = "POST"
) -> None:
    """A wrk script sending ``bodies`` round robin as JSON to ``target`` (none: no body)."""
    lines = [
        f"wrk.method = {json.dumps(method)}",
        f"wrk.path = {json.dumps(target)}",
        *(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()),
    ]
    if bodies:
        lines += [
            'wrk.headers["Content-Type"] = "application/json"',
            "local bodies = {",
            *(f"  {json.dumps(b)}," for b in bodies),
            "}",
            "local i = 0",
            "request = function()",
            "  i = i % #bodies + 1",
            "  return wrk.format(nil, nil, nil, bodies[i])",
            "end",
        ]
    path.write_text("\n".join(lines) + "\n")


def wrk(port: int, script: Path, seconds: int, connections: int) -> tuple[float, float, float]:
    """Requests/s, p50 and p99 in ms."""
    command = [*_pin(LOAD_CPU), "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    done = subprocess.run(
        [*command, "-s", str(script), f"http://127.0.0.1:{port}/"],
        capture_output=True,
        text=True,
        check=True,
    )
    rate = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", done.stdout)
    latency = {p: float(v) * _UNITS[u] for p, v, u in _LATENCY.findall(done.stdout)}
    if rate is None or set(latency) != {"50", "99"}:
        raise SystemExit(f"cannot parse wrk output:\n{done.stdout}")
    if non_2xx:  # a refused token or a limit: the figure would be wrong
        raise SystemExit(f"wrk saw {non_2xx.group(1)} non-2xx answers:\n{done.stdout}")
    return float(rate.group(1)), latency["50"], latency["99"]


async def run(args: argparse.Namespace, data_dir: Path) -> None:
    if args.backend == "sqlite":
        await measure(args, data_dir, f"sqlite+aiosqlite:///{(data_dir / 'bastion.db').resolve()}")
        return
    async with database_url("postgres", args.postgres_url) as url:
        await measure(args, data_dir, url)


async def measure(args: argparse.Namespace, data_dir: Path, url: str) -> None:
    t0 = time.perf_counter()
    store_id, random_pairs, granted_pairs = await load_store(
        url, args.tuples, args.seed, args.pairs
    )
    print(
        f"# {args.tuples:,} tuples loaded into {args.backend} in {time.perf_counter() - t0:.1f} s"
    )
    served_url = None if args.backend == "sqlite" else url
    bastion = start_bastion(data_dir, [], database_url=served_url)
    try:
        user_id = await service_account(bastion.port, data_dir)
    finally:
        bastion.stop()
    bastion = start_bastion(
        data_dir,
        [user_id],
        args.decision_sample_rate,
        denial_burst=not args.no_denial_burst,
        database_url=served_url,
    )
    server = start_bare(data_dir)
    pairs = granted_pairs if args.granted else random_pairs
    bodies = [
        json.dumps(
            {
                "tuple_key": {"user": user, "relation": "viewer", "object": document},
                "consistency": "MINIMIZE_LATENCY",
            }
        )
        for document, user in pairs
    ]
    check_path = f"/stores/{store_id}/check"
    results: dict[str, list[tuple[float, float, float]]] = {"check": [], "bare": [], "account": []}
    try:
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            headers = await fresh_token(bastion.port, check_path, bodies[0])
            if not results["check"]:
                print(f"# first check (loads the index): {time.perf_counter() - t0:.1f} s")
            check_script, bare_script = data_dir / "check.lua", data_dir / "bare.lua"
            lua_script(check_script, check_path, bodies, headers)
            lua_script(bare_script, "/check", bodies, headers)
            results["bare"].append(wrk(server.port, bare_script, args.duration, args.connections))
            results["check"].append(
                wrk(bastion.port, check_script, args.duration, args.connections)
            )
            account_script = data_dir / "account.lua"
            lua_script(account_script, "/v1/account", [], headers, method="GET")
            results["account"].append(
                wrk(bastion.port, account_script, args.duration, args.connections)
            )
    except SystemExit:
        errors = (data_dir / "bastion.err").read_text(errors="replace")
        print(f"server stderr (last 4000 characters):\n{errors[-4000:]}", file=sys.stderr)
        raise
    finally:
        bastion.stop()
        server.stop()
    report(args, results)


def report(args: argparse.Namespace, results: dict[str, list[tuple[float, float, float]]]) -> None:
    kind = "granted" if args.granted else "random (mostly denied)"
    print(
        f"HTTP check ({args.backend}): 1 worker on CPU 0, wrk on CPU 1, {args.rounds} rounds x "
        f"{args.duration}s, "
        f"{args.connections} connections, {args.pairs} distinct {kind} checks, decision "
        f"sample rate {args.decision_sample_rate}"
        f"{', denial_burst detector off' if args.no_denial_burst else ''}; medians, rounds in "
        f"brackets. Load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    rates = {}
    for name, label in (
        ("bare", "bare FastAPI POST /check"),
        ("check", "POST /stores/{id}/check"),
        ("account", "GET /v1/account (same token)"),
    ):
        rounds = results[name]
        rate = statistics.median(r[0] for r in rounds)
        p50 = statistics.median(r[1] for r in rounds)
        p99 = statistics.median(r[2] for r in rounds)
        rates[name] = rate
        each = ", ".join(f"{r[0]:.0f}" for r in rounds)
        print(f"{label:<28} {rate:>8.1f} req/s  p50 {p50:6.2f} ms  p99 {p99:7.2f} ms  ({each})")
    ratios = ", ".join(
        f"{c[0] / b[0]:.2f}" for c, b in zip(results["check"], results["bare"], strict=True)
    )
    print(
        f"check / bare: {rates['check'] / rates['bare']:.2f} ({ratios}); target >= {TARGET_RATIO}"
    )
    print(
        f"GET /v1/account / bare: {rates['account'] / rates['bare']:.2f} (any authenticated "
        f"request through the full stack, for reference)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tuples", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--pairs", type=int, default=1000, help="distinct checks in the load")
    parser.add_argument(
        "--backend",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="the served worker's database (postgres: a throwaway database on --postgres-url)",
    )
    parser.add_argument("--postgres-url", default=POSTGRES_URL)
    parser.add_argument(
        "--granted", action="store_true", help="checks granted through a folder team"
    )
    parser.add_argument(
        "--decision-sample-rate",
        type=float,
        default=1.0,
        help="BASTION_AUTHZ decision_sample_rate (allowed decisions logged; denied always are)",
    )
    parser.add_argument(
        "--no-denial-burst",
        action="store_true",
        help="switch off the monitoring detector that counts every denied decision",
    )
    args = parser.parse_args()
    if CAN_PIN:
        os.sched_setaffinity(0, {LOAD_CPU})
    else:
        print("warning: one CPU or no taskset: server and load share the CPU", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
