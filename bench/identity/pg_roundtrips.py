"""Connection checkouts, pre-pings and round trips per identity request on PostgreSQL.

Counts, in process and exactly (no timing): pool checkouts and new connections (SQLAlchemy pool
events), liveness pings (the dialect's ``do_ping``, whoever calls it: ``pool_pre_ping`` or
Bastion's own checkout check), statements seen by ``before_cursor_execute`` (SQLAlchemy Core;
:mod:`bastion.storage.prepared` statements bypass it) and round trips: every write of the
asyncpg connection's transport is one message flight to the server that the client then waits
for (BEGIN, a prepared statement's Bind/Execute/Sync, COMMIT, ROLLBACK, a ping's three);
``prepares`` are those of them that prepare a statement (asyncpg's Parse/Describe/Sync, once
per statement and connection: a pooled connection new to a statement pays one more).

The app is Bastion's ``create_app`` on a fresh PostgreSQL database (created, migrated, dropped
after), driven through raw ASGI calls on one task. Counts are split between that task (the
request itself) and every other task (the audit writer, mail outbox ...), whose work the run
waits for after each request. Each request kind is warmed up first (asyncpg prepares each
statement once per connection), then measured ``--repeat`` times; min and max are printed.
What a kind needs before each measured request (a login challenge to complete) is done outside
the count.

Besides the password account's requests, a second account with an authenticator app (TOTP)
is measured through multi-factor requests: its password login (202, a challenge), completing
the challenge with a TOTP code, listing its factors, a TOTP step-up, and a password change its
step-up admits (refused by the policy). The app runs on a clock moved one TOTP step (30 s) ahead
before each code is made, outside the count, so that each code is new (a code is accepted once:
replay protection).
``--sites`` lists where the request's checkouts come from (the innermost Bastion frame
outside :mod:`bastion.storage`) with the round trips each made. Usage::

    .venv/bin/python -m bench.identity.pg_roundtrips [--admin-url postgresql://...] [--sites]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import greenlet
from sqlalchemy import event
from sqlalchemy.engine import make_url

from bench.identity.inprocess import (
    EMAIL,
    PASSWORD,
    _verified_user,
    exchange,
    http_scope,
    settings_for,
)

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
MFA_EMAIL = "bench-mfa@example.com"
REJECTED_PASSWORD = "password"  # noqa: S105 - the policy refuses it: the failed change
METRICS = ("checkouts", "connects", "pings", "statements", "round_trips", "prepares")
_WARMUP = 3
ASGIApp = Any
#: A measured request: what it runs, the status it must answer, what precedes it uncounted.
Kind = tuple[str, Callable[[], Awaitable[int]], int, Callable[[], Awaitable[None]] | None]


class Counts:
    """Per-metric counts for the request task and for every other task."""

    def __init__(self) -> None:
        self.request: Counter[str] = Counter()
        self.other: Counter[str] = Counter()
        self.sites: Counter[str] = Counter()
        self.site_trips: Counter[str] = Counter()
        self._site = "?"
        self.request_task: asyncio.Task[Any] | None = None

    def add(self, metric: str) -> None:
        try:
            task = asyncio.current_task()
        except RuntimeError:  # no running loop (disposal at exit)
            task = None
        if task is not None and task is self.request_task:
            self.request[metric] += 1
            if metric == "checkouts":
                self._site = _site()
                self.sites[self._site] += 1
            elif metric == "round_trips":
                self.site_trips[self._site] += 1
        else:
            self.other[metric] += 1

    def reset(self) -> None:
        self.request.clear()
        self.other.clear()


def _frames() -> Iterator[Any]:
    """The calling frames, innermost first, across greenlets: SQLAlchemy's async API runs the
    checkout in a greenlet whose parent holds the awaiting coroutines."""
    frame: Any = sys._getframe(1)  # noqa: SLF001 - walking the stack is the point
    current: Any = greenlet.getcurrent()
    while True:
        while frame is not None:
            yield frame
            frame = frame.f_back
        current = current.parent
        if current is None:
            return
        frame = current.gr_frame


def _site() -> str:
    """The innermost Bastion frame outside the storage package that led to this checkout."""
    for frame in _frames():
        name = frame.f_code.co_filename
        if "/bastion/" in name and "/bastion/storage/" not in name:
            module = name.rsplit("/bastion/", 1)[1].removesuffix(".py").replace("/", ".")
            return f"{module}:{frame.f_code.co_name}:{frame.f_lineno}"
    return "?"


def instrument(engine: Any, counts: Counts) -> None:
    """Count checkouts, connections, pings, Core statements and transport writes."""
    sync = engine.sync_engine
    event.listen(sync, "checkout", lambda *_: counts.add("checkouts"))
    event.listen(sync, "before_cursor_execute", lambda *_: counts.add("statements"))

    def connected(dbapi_connection: Any, _record: Any) -> None:
        counts.add("connects")
        transport = dbapi_connection._connection._transport  # noqa: SLF001 - counting writes
        write = transport.write

        def counted(data: Any) -> None:
            counts.add("round_trips")
            if bytes(data[:1]) == b"P":  # a Parse message first: asyncpg preparing a statement
                counts.add("prepares")
            write(data)

        transport.write = counted

    # Inserted first: the transport is wrapped before any other connect handler talks.
    event.listen(sync, "connect", connected, insert=True)
    dialect = sync.dialect
    do_ping = dialect.do_ping

    def ping(dbapi_connection: Any) -> bool:
        counts.add("pings")
        return bool(do_ping(dbapi_connection))

    dialect.do_ping = ping


async def call(
    app: ASGIApp, method: str, path: str, payload: object | None, token: str | None = None
) -> tuple[int, bytes]:
    """One request straight into the ASGI app, on the calling task."""
    body = b"" if payload is None else json.dumps(payload).encode()
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"user-agent", b"bench"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode()))

    return await exchange(app, http_scope(method, path, headers), body)


class Requests:
    """The measured requests, each returning its status (checked against the expected one)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.tokens: dict[str, Any] = {}
        self.registered = 0

    async def login(self) -> int:
        status, data = await call(
            self.app, "POST", "/v1/sessions", {"email": EMAIL, "password": PASSWORD}
        )
        if status == 200:
            self.tokens = json.loads(data)
        return status

    async def refresh(self) -> int:
        body = {"refresh_token": self.tokens["refresh_token"]}
        status, data = await call(self.app, "POST", "/v1/sessions/refresh", body)
        if status == 200:
            self.tokens = json.loads(data)
        return status

    async def account(self) -> int:
        return (await call(self.app, "GET", "/v1/account", None, self.tokens["access_token"]))[0]

    async def failed_password_change(self) -> int:
        body = {"current_password": PASSWORD, "new_password": REJECTED_PASSWORD}
        path = "/v1/account/password"
        return (await call(self.app, "POST", path, body, self.tokens["access_token"]))[0]

    async def registration(self) -> int:
        self.registered += 1
        email = f"bench-rt-{self.registered}-{secrets.token_hex(3)}@example.com"
        body = {"email": email, "password": PASSWORD, "display_name": "Bench User"}
        return (await call(self.app, "POST", "/v1/accounts", body))[0]

    def kinds(self) -> list[Kind]:
        return [
            ("POST /v1/sessions (login)", self.login, 200, None),
            ("POST /v1/sessions/refresh", self.refresh, 200, None),
            ("GET /v1/account", self.account, 200, None),
            ("POST /v1/account/password (rejected)", self.failed_password_change, 422, None),
            ("POST /v1/accounts (registration)", self.registration, 202, None),
        ]


class SteppingClock:
    """The system clock, moved ahead by :meth:`step` (one TOTP step at a time)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def step(self) -> None:
        self.offset += timedelta(seconds=30)


class MfaRequests:
    """The multi-factor requests of an account with an authenticator app."""

    def __init__(self, app: ASGIApp, clock: SteppingClock) -> None:
        self.app = app
        self.clock = clock
        self.secret = ""
        self.challenge = ""
        self.access_token = ""

    def _code(self) -> str:
        from bastion.identity.mfa import totp  # noqa: PLC0415

        return totp.code_at(self.secret, totp.time_step(self.clock.now()))

    async def next_step(self) -> None:
        """Move the clock to a TOTP step no code was made for yet (each is accepted once),
        then reload the signing keys, whose cache that aged (what the measured request then
        does is its own work)."""
        self.clock.step()
        await self.app.state.services.identity.access_tokens.keys.active_key()

    async def challenged(self) -> None:
        await self.next_step()
        if await self.login() != 202:
            raise SystemExit("no login challenge")

    async def enroll(self, data_dir: Path) -> None:
        """The account, verified, with an active authenticator app."""
        await _verified_user(self.app, data_dir, MFA_EMAIL)
        body = {"email": MFA_EMAIL, "password": PASSWORD}
        status, data = await call(self.app, "POST", "/v1/sessions", body)
        token = json.loads(data)["access_token"]
        status, data = await call(self.app, "POST", "/v1/account/mfa/totp", None, token)
        if status != 201:
            raise SystemExit(f"enrollment: {status} {data[:300]!r}")
        self.secret = json.loads(data)["secret"]
        self.access_token = token
        self.clock.step()
        body = {"code": self._code()}
        status, data = await call(self.app, "POST", "/v1/account/mfa/totp/activate", body, token)
        if status != 200:
            raise SystemExit(f"activation: {status} {data[:300]!r}")

    async def login(self) -> int:
        body = {"email": MFA_EMAIL, "password": PASSWORD}
        status, data = await call(self.app, "POST", "/v1/sessions", body)
        if status == 202:
            self.challenge = json.loads(data)["challenge_token"]
        return status

    async def complete(self) -> int:
        body = {"challenge_token": self.challenge, "method": "otp", "code": self._code()}
        status, data = await call(self.app, "POST", "/v1/sessions/mfa/complete", body)
        if status == 200:
            self.access_token = json.loads(data)["access_token"]
        return status

    async def factors(self) -> int:
        return (await call(self.app, "GET", "/v1/account/mfa", None, self.access_token))[0]

    async def step_up(self) -> int:
        body = {"method": "otp", "code": self._code()}
        path = "/v1/sessions/current/step-up"
        status, data = await call(self.app, "POST", path, body, self.access_token)
        if status == 200:
            self.access_token = json.loads(data)["access_token"]
        return status

    async def failed_password_change(self) -> int:
        body = {"current_password": PASSWORD, "new_password": REJECTED_PASSWORD}
        path = "/v1/account/password"
        return (await call(self.app, "POST", path, body, self.access_token))[0]

    def kinds(self) -> list[Kind]:
        return [
            ("POST /v1/sessions (TOTP account: 202)", self.login, 202, None),
            ("POST /v1/sessions/mfa/complete (TOTP)", self.complete, 200, self.challenged),
            ("GET /v1/account/mfa", self.factors, 200, None),
            ("POST /v1/sessions/current/step-up (TOTP)", self.step_up, 200, self.next_step),
            ("POST /v1/account/password (rejected, TOTP)", self.failed_password_change, 422, None),
        ]


async def _settled(app: ASGIApp) -> None:
    """Wait until the audit recorder has written what the request queued."""
    queue = getattr(app.state.services.audit, "_queue", None)
    if queue is not None:
        await queue.join()
    await asyncio.sleep(0.05)  # other background work the request woke (mail outbox)


async def measure(
    app: ASGIApp,
    counts: Counts,
    run: Callable[[], Awaitable[int]],
    expected: int,
    repeat: int,
    *,
    prepare: Callable[[], Awaitable[None]] | None = None,
) -> list[tuple[Counter[str], Counter[str]]]:
    samples = []
    for index in range(_WARMUP + repeat):
        if prepare is not None:
            await prepare()
            await _settled(app)
        counts.reset()
        counts.sites.clear()
        counts.site_trips.clear()
        task = asyncio.ensure_future(run())
        counts.request_task = task
        status = await task
        counts.request_task = None
        if status != expected:
            raise SystemExit(f"expected {expected}, got {status}")
        await _settled(app)
        if index >= _WARMUP:
            samples.append((Counter(counts.request), Counter(counts.other)))
    return samples


def _span(samples: list[Counter[str]], metric: str) -> str:
    values = sorted(sample[metric] for sample in samples)
    low, high = values[0], values[-1]
    return f"{low}" if low == high else f"{low}-{high}"


async def run(args: argparse.Namespace) -> None:
    from bastion import logging as bastion_logging  # noqa: PLC0415
    from bastion.app import create_app  # noqa: PLC0415
    from bastion.services import build_services  # noqa: PLC0415
    from bastion.storage import migrate  # noqa: PLC0415

    name = f"bastion_rt_{secrets.token_hex(6)}"  # hex digits only: safe in DDL
    admin = await asyncpg.connect(args.admin_url, timeout=5)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(args.admin_url).set(drivername="postgresql+asyncpg", database=name)
    try:
        with tempfile.TemporaryDirectory() as directory:
            settings = settings_for(Path(directory)).model_copy(
                update={"database_url": url.render_as_string(hide_password=False)}
            )
            bastion_logging.configure(settings.log_level, json=settings.log_json)
            await migrate.upgrade(settings.effective_database_url)
            clock = SteppingClock()
            app = create_app(settings, services=build_services(settings, clock=clock))
            counts = Counts()
            instrument(app.state.services.database.engine, counts)
            async with app.router.lifespan_context(app):
                requests = Requests(app)
                await _verified_user(app, Path(directory), EMAIL)
                await requests.login()
                mfa = MfaRequests(app, clock)
                await mfa.enroll(Path(directory))
                await _settled(app)
                kinds = requests.kinds() + mfa.kinds()
                report(await _measure_all(app, counts, kinds, args), counts, args)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _measure_all(
    app: ASGIApp, counts: Counts, kinds: list[Kind], args: argparse.Namespace
) -> dict[str, tuple[list[tuple[Counter[str], Counter[str]]], Counter[str]]]:
    results = {}
    for label, request, expected, prepare in kinds:
        samples = await measure(app, counts, request, expected, args.repeat, prepare=prepare)
        sites = Counter(
            {
                f"{site}  ({counts.site_trips[site]} round trips)": n
                for site, n in counts.sites.items()
            }
        )
        results[label] = (samples, sites)
    return results


def report(
    results: dict[str, tuple[list[tuple[Counter[str], Counter[str]]], Counter[str]]],
    counts: Counts,
    args: argparse.Namespace,
) -> None:
    del counts
    header = "".join(f"{metric:>12}" for metric in METRICS)
    print(f"per request, min-max of {args.repeat} (request task | other tasks)")
    print(f"{'':44}{header}")
    for label, (samples, sites) in results.items():
        mine = [sample[0] for sample in samples]
        theirs = [sample[1] for sample in samples]
        print(f"{label:44}" + "".join(f"{_span(mine, m):>12}" for m in METRICS))
        print(f"{'  other tasks':44}" + "".join(f"{_span(theirs, m):>12}" for m in METRICS))
        if args.sites:
            for site, n in sites.most_common():
                print(f"      {n:3}  {site}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--admin-url", default=ADMIN_URL, help="creates and drops the database")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sites", action="store_true", help="where the checkouts come from")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
