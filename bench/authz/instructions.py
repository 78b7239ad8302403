"""Instructions per authenticated request through Bastion's whole app, counted by valgrind's
callgrind: ``check`` (``POST /stores/{id}/check``, a denied check, so its decision is always
logged) and ``account`` (``GET /v1/account``), figures that other load on the shared machine
cannot disturb.

The app is ``create_app`` on SQLite as ``bastion serve`` runs it (limits far above the load),
driven by raw ASGI calls (:func:`bench.identity.inprocess.call`) with a bearer token of a
service account listed in ``query_users``. Counting is switched on once the app is warm and
covers ``--requests`` requests *and* the audit recorder's writer draining its queue (every
thread; SQLite runs on the loop's thread). Kernel work is not counted. ``--cpu`` prints the
process CPU time per request instead (no valgrind; noisy on a loaded machine).

``rebac`` is ``check`` on the ReBAC data of :mod:`bench.authz.http` (:mod:`bench.authz.rebac`
at 100,000 tuples, bulk-loaded; ``--requests`` distinct random document/user pairs, nearly all
denied), each pair sent twice before counting (the index loaded, what the search keeps
between writes kept), then once each. With ``--unseen N``, N other random pairs are sent once
before counting instead, and the ``--requests`` counted pairs are new: checks of documents and
users mostly not seen since the index was loaded (the folders near the roots seen often).

``--no-denial-burst`` switches off the monitoring detector that counts every denied decision
(its share of a denied check's cost). Usage::

    .venv/bin/python -m bench.authz.instructions [--requests 300] [--cpu] [check account]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import callgrind
from bench.identity.inprocess import (
    PASSWORD,
    _verified_user,
    call,
    exchange,
    http_scope,
    settings_for,
)

TARGETS = ("check", "account", "rebac")
#: The ``rebac`` target's data (the shapes of :mod:`bench.authz.rebac` at this size).
REBAC_TUPLES = 100_000
EMAIL = "bench-authz@example.com"
_WARMUP = 200
MODEL = """model
  schema 1.1
type user
type document
  relations
    define viewer: [user]
"""


async def _user_id(data_dir: Path) -> str:
    """Create the service account in a first app; its user id."""
    from bastion.app import create_app  # noqa: PLC0415

    app = create_app(settings_for(data_dir))
    async with app.router.lifespan_context(app):
        await _verified_user(app, data_dir, EMAIL)
        token = await _token(app)
        status, data = await _authed(app, "GET", "/v1/account", token, None)
        if status != 200:
            raise SystemExit(f"GET /v1/account: {status} {data[:300]!r}")
        return str(json.loads(data)["id"])


async def _token(app: Any) -> str:
    status, data = await call(app, "POST", "/v1/sessions", {"email": EMAIL, "password": PASSWORD})
    if status != 200:
        raise SystemExit(f"POST /v1/sessions: {status} {data[:300]!r}")
    return str(json.loads(data)["access_token"])


async def _authed(
    app: Any, method: str, path: str, token: str, payload: object
) -> tuple[int, bytes]:
    body = b"" if payload is None else json.dumps(payload).encode()

    headers = [
        (b"host", b"127.0.0.1"),
        (b"user-agent", b"bench"),
        (b"authorization", f"Bearer {token}".encode()),
    ]
    if payload is not None:
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
    return await exchange(app, http_scope(method, path, headers), body)


class Workload:
    """The app, a store with a model and a few tuples, and the request loops."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.token = ""
        self.check_path = ""
        self.bodies: list[dict[str, Any]] = []
        self.counted: list[dict[str, Any]] = []
        self.body = {
            "tuple_key": {"user": "user:u1", "relation": "viewer", "object": "document:2"},
            "consistency": "MINIMIZE_LATENCY",
        }

    async def prepare(self) -> None:
        from bastion.authz.model import parse_dsl  # noqa: PLC0415
        from bastion.authz.service import RequestInfo  # noqa: PLC0415
        from bastion.authz.tuples import Tuple  # noqa: PLC0415

        authz = self.app.state.services.authz
        info = RequestInfo(actor="bench")
        store = await authz.create_store("bench", info)
        await authz.write_model(store.id, parse_dsl(MODEL), info)
        tuples = [Tuple(f"document:{i}", "viewer", f"user:u{i}") for i in range(100)]
        await authz.write(store.id, writes=tuples, info=info)
        self.check_path = f"/stores/{store.id}/check"
        self.token = await _token(self.app)

    async def prepare_rebac(self, n: int, unseen: int = 0) -> None:
        """A second store with the ReBAC model and data; ``n`` random pairs to check (after
        ``unseen`` other ones, when given, to warm up with)."""
        from bastion.authz.model import parse_dsl  # noqa: PLC0415
        from bastion.authz.service import RequestInfo  # noqa: PLC0415
        from bench.authz.rebac import MODEL as REBAC_MODEL  # noqa: PLC0415
        from bench.authz.rebac import build  # noqa: PLC0415
        from bench.authz.rebac_sql import bulk_load, queries  # noqa: PLC0415

        services = self.app.state.services
        info = RequestInfo(actor="bench")
        store = await services.authz.create_store("rebac", info)
        await services.authz.write_model(store.id, parse_dsl(REBAC_MODEL), info)
        tuples, doc_viewers = build(6, REBAC_TUPLES)
        await bulk_load(services.database, store.id, tuples)
        pairs, _ = queries(tuples, doc_viewers, REBAC_TUPLES, unseen + n, 6)
        self.check_path = f"/stores/{store.id}/check"
        bodies = [
            {
                "tuple_key": {"user": user, "relation": "viewer", "object": document},
                "consistency": "MINIMIZE_LATENCY",
            }
            for document, user in pairs
        ]
        self.bodies = bodies[:unseen]  # the warm-up's (``run`` sends ``self.bodies``)
        self.counted = bodies[unseen:]

    async def run(self, target: str, n: int) -> None:
        method, path, payload = (
            ("POST", self.check_path, self.body)
            if target in {"check", "rebac"}
            else ("GET", "/v1/account", None)
        )
        for i in range(n):
            if self.bodies:
                payload = self.bodies[i % len(self.bodies)]
            status, data = await _authed(self.app, method, path, self.token, payload)
            if status != 200:
                raise SystemExit(f"{target}: {status} {data[:300]!r}")
        queue = getattr(self.app.state.services.audit, "_queue", None)
        if queue is not None:
            await queue.join()


async def _app_run(
    target: str,
    n: int,
    flags: Path,
    *,
    valgrind: bool,
    denial_burst: bool = True,
    unseen: int = 0,
) -> float:
    from bastion import logging as bastion_logging  # noqa: PLC0415
    from bastion.app import create_app  # noqa: PLC0415
    from bastion.authz.settings import AuthzSettings  # noqa: PLC0415
    from bastion.monitoring.settings import MonitoringSettings  # noqa: PLC0415
    from bastion.storage import migrate  # noqa: PLC0415

    settings = settings_for(flags)
    bastion_logging.configure(settings.log_level, json=settings.log_json)
    await migrate.upgrade(settings.effective_database_url)
    user_id = await _user_id(flags)
    # The index catches up once per staleness interval of wall time, which valgrind stretches
    # 50-fold: the longest bound keeps that periodic query out of the per-request figure.
    authz = AuthzSettings(query_users=(user_id,), cache_staleness_seconds=60.0)
    update: dict[str, Any] = {"authz": authz}
    if not denial_burst:
        update["monitoring"] = MonitoringSettings.model_validate(
            {"denial_burst": {"enabled": False}}
        )
    settings = settings.model_copy(update=update)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        work = Workload(app)
        await work.prepare()
        if target == "rebac":
            await work.prepare_rebac(n, unseen)
            if unseen:
                await work.run(target, unseen)
            work.bodies = work.counted
        if not unseen or target != "rebac":
            await work.run(target, 2 * n if target == "rebac" else _WARMUP)
        if valgrind:
            callgrind.ready(flags)
        started = time.process_time()
        await work.run(target, n)
        cpu = (time.process_time() - started) / n * 1e6
        if valgrind:
            callgrind.done(flags)
        return cpu


def count(
    target: str, n: int, keep: Path | None = None, *, denial_burst: bool = True, unseen: int = 0
) -> float:
    """Instructions per request of ``target`` (writer included), in a fresh process; the
    callgrind file is copied into ``keep`` (for ``callgrind_annotate``) when given."""
    extra = [] if denial_burst else ["--no-denial-burst"]
    extra += ["--unseen", str(unseen)] if unseen else []
    return callgrind.count(__spec__.name, [target], n, extra=extra, keep=keep, label=target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", help=f"some of {', '.join(TARGETS)} (default all)")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--cpu", action="store_true", help="CPU time per request, no valgrind")
    parser.add_argument(
        "--no-denial-burst",
        action="store_true",
        help="switch off the monitoring detector that counts denied checks (its cost apart)",
    )
    parser.add_argument(
        "--unseen", type=int, default=0, help="rebac: warm up with N other pairs, count new ones"
    )
    parser.add_argument("--keep", type=Path, help="copy the callgrind files into this folder")
    parser.add_argument("--drive", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        target, n, flags = args.drive
        burst = not args.no_denial_burst
        run = _app_run(
            target, int(n), Path(flags), valgrind=True, denial_burst=burst, unseen=args.unseen
        )
        asyncio.run(run)
        return
    unknown = set(args.targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    targets = args.targets or TARGETS
    if args.cpu:
        for target in targets:
            with tempfile.TemporaryDirectory() as name:
                run = _app_run(
                    target,
                    args.requests,
                    Path(name),
                    valgrind=False,
                    denial_burst=not args.no_denial_burst,
                    unseen=args.unseen,
                )
                cpu = asyncio.run(run)
            print(f"{target:<10} {cpu:>10,.0f} us CPU/request (all threads)")
        return
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is missing: apt-get install -y valgrind")
    print(f"{args.requests} requests per target, instructions per request (all threads)")
    for target in targets:
        burst = not args.no_denial_burst
        value = count(target, args.requests, args.keep, denial_burst=burst, unseen=args.unseen)
        print(f"{target:<10} {value:>14,.0f}")


if __name__ == "__main__":
    main()
