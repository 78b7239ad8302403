"""In-process cost of a refresh rotation and of a password login beyond its hash: CPU time
per request (every thread of the process: the event loop, which runs SQLite inline, the
hashing pool), an optional cProfile, and (``bench.identity.instructions``) valgrind instruction
counts.

The app is Bastion's ``create_app`` on SQLite, as ``bastion serve`` runs it, driven through
raw ASGI calls (no sockets, no HTTP client): ``POST /v1/sessions/refresh`` chaining one
session's refresh tokens, and ``POST /v1/sessions`` password logins. Logins run with Argon2 at
its cheapest (1 MiB, one pass) so that what is measured is the rest of a login; the cost of one
such hash, timed in the same run, is printed beside it. Audit events recorded by the requests
are written (the recorder's queue drained) inside the measurement. Usage::

    .venv/bin/python -m bench.identity.inprocess [--requests 2000] [--profile refresh|login]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

PASSWORD = "Vivid-otter quarry lantern 42"  # noqa: S105 - benchmark input, not a secret
EMAIL = "bench@example.com"
LOGIN_EMAIL = "bench-login@example.com"
_WARMUP = 200
ASGIApp = Any


def http_scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """An HTTP request's ASGI scope from a client on loopback."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }


def _scope(method: str, path: str, body: bytes) -> dict[str, Any]:
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"user-agent", b"bench"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    return http_scope(method, path, headers)


async def exchange(app: ASGIApp, scope: dict[str, Any], body: bytes) -> tuple[int, bytes]:
    """``scope`` with ``body`` straight into the ASGI app; returns status and body."""
    sent = False
    status, chunks = 0, []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


async def call(app: ASGIApp, method: str, path: str, payload: object) -> tuple[int, bytes]:
    """One request straight into the ASGI app; returns status and body."""
    body = json.dumps(payload).encode()
    return await exchange(app, _scope(method, path, body), body)


def settings_for(data_dir: Path) -> Any:
    """``bastion serve``'s settings (SQLite), limits far above the load, cheap Argon2."""
    from bastion.config import Settings  # noqa: PLC0415
    from bastion.identity.passwords import PasswordSettings  # noqa: PLC0415

    policies = ("login", "registration", "email-verification", "token", "api-ip", "api-user")
    return Settings(
        data_dir=data_dir,
        secret_key="b" * 48,
        mailer="file",
        log_level="warning",
        allowed_hosts=["127.0.0.1"],
        ratelimit={"policies": {name: {"limit": 10_000_000} for name in policies}},
        passwords=PasswordSettings(
            hash_memory_kib=1024, hash_time_cost=1, allow_insecure_hash_parameters=True
        ),
    )


def _expect(answer: tuple[int, bytes], status: int) -> bytes:
    """The body of an answer with ``status``; anything else ends the benchmark (a setup bug)."""
    if answer[0] != status:
        raise SystemExit(f"expected {status}, got {answer[0]}: {answer[1][:300]!r}")
    return answer[1]


async def _verified_user(app: ASGIApp, data_dir: Path, email: str) -> None:
    body = {"email": email, "password": PASSWORD, "display_name": "Bench User"}
    _expect(await call(app, "POST", "/v1/accounts", body), 202)
    for _ in range(200):
        for path in sorted((data_dir / "mail").glob("*.json")):
            mail = json.loads(path.read_text())
            if mail["to"] == email and mail["kind"] == "verify_email":
                token = mail["text"].split("Token: ", 1)[1].split()[0]
                body = {"token": token}
                _expect(await call(app, "POST", "/v1/accounts/verify-email", body), 200)
                return
        await asyncio.sleep(0.05)
    raise SystemExit(f"no verification mail for {email}")


async def _login(app: ASGIApp, email: str) -> dict[str, Any]:
    body = {"email": email, "password": PASSWORD}
    return dict(json.loads(_expect(await call(app, "POST", "/v1/sessions", body), 200)))


class Workload:
    """The app with two verified accounts, and the two request loops."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.refresh_token = ""

    async def prepare(self, data_dir: Path) -> None:
        await _verified_user(self.app, data_dir, EMAIL)
        await _verified_user(self.app, data_dir, LOGIN_EMAIL)
        self.refresh_token = (await _login(self.app, EMAIL))["refresh_token"]

    async def refresh(self, n: int) -> None:
        for _ in range(n):
            status, data = await call(
                self.app, "POST", "/v1/sessions/refresh", {"refresh_token": self.refresh_token}
            )
            if status != 200:
                raise SystemExit(f"refresh: {status} {data[:300]!r}")
            self.refresh_token = json.loads(data)["refresh_token"]
        await self.drain()

    async def login(self, n: int) -> None:
        body = {"email": LOGIN_EMAIL, "password": PASSWORD}
        for _ in range(n):
            status, data = await call(self.app, "POST", "/v1/sessions", body)
            if status != 200:
                raise SystemExit(f"login: {status} {data[:300]!r}")
        await self.drain()

    async def drain(self) -> None:
        """Wait until the audit recorder has written every queued event."""
        queue = getattr(self.app.state.services.audit, "_queue", None)
        if queue is not None:
            await queue.join()


async def cpu_per_request(run: Callable[[int], Awaitable[None]], n: int) -> float:
    """Process CPU time (all threads) per request, in microseconds."""
    start = time.process_time()
    await run(n)
    return (time.process_time() - start) / n * 1e6


def hash_cpu_us(settings: Any, samples: int = 200) -> float:
    from bastion.identity.passwords import Argon2Hasher  # noqa: PLC0415

    hasher = Argon2Hasher(settings.passwords)
    encoded = hasher.hash(PASSWORD)
    start = time.process_time()
    for _ in range(samples):
        hasher.verify(encoded, PASSWORD)
    return (time.process_time() - start) / samples * 1e6


async def main_async(args: argparse.Namespace) -> None:
    from bastion import logging as bastion_logging  # noqa: PLC0415
    from bastion.app import create_app  # noqa: PLC0415
    from bastion.storage import migrate  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as name:
        data_dir = Path(name)
        settings = settings_for(data_dir)
        bastion_logging.configure(settings.log_level, json=settings.log_json)  # as a worker does
        await migrate.upgrade(settings.effective_database_url)
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            work = Workload(app)
            await work.prepare(data_dir)
            await work.refresh(_WARMUP)
            await work.login(_WARMUP)
            results: dict[str, float] = {}
            for name_, run in (("refresh", work.refresh), ("login", work.login)):
                n = args.requests if name_ == "refresh" else args.requests // 2
                if args.profile == name_:
                    # The event loop thread's CPU time: waits for other threads do not count.
                    profile = cProfile.Profile(time.thread_time)
                    profile.enable()
                    results[name_] = await cpu_per_request(run, n)
                    profile.disable()
                    stats = pstats.Stats(profile)
                    stats.sort_stats(args.sort).print_stats(args.lines)
                else:
                    results[name_] = await cpu_per_request(run, n)
    hashing = hash_cpu_us(settings)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"in-process CPU per request (all threads), load average {load}")
    print(f"  POST /v1/sessions/refresh  {results['refresh']:8.0f} us")
    print(f"  POST /v1/sessions (login)  {results['login']:8.0f} us")
    print(f"    of which one Argon2 verify at 1 MiB/t=1: {hashing:.0f} us")
    print(f"    login beyond the hash: {results['login'] - hashing:.0f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--profile", choices=("refresh", "login"))
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--lines", type=int, default=40)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
