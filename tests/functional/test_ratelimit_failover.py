"""Redis failure with a real server: the test starts its own redis-server on a free port, stops
and restarts it (and freezes it), while the shared server at 6379 stays untouched.

Fail-closed policies (authentication) answer 503 while Redis is away; fail-open policies keep
limiting with the local fallback; the switch and the recovery are logged and exported.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from structlog.testing import capture_logs
from tests.common.server import free_port, kill_process_group

from bastion.protections.ratelimit import (
    BackoffPolicy,
    FailoverStore,
    FailureMode,
    Policy,
    RateLimiter,
    RateLimitMiddleware,
    RedisStore,
    StoreUnavailable,
)

pytestmark = [pytest.mark.redis, pytest.mark.slow]

PROBE_SECONDS = 0.2
#: Redis client timeout: a frozen server must cost at most this per probe.
TIMEOUT_SECONDS = 0.25
LOGIN = Policy.per("login", 5, 60, paths=["/login"])
API = Policy.per("api-ip", 3, 60, failure_mode=FailureMode.FAIL_OPEN)


class RedisServer:
    """A throwaway redis-server: no persistence, so a restart forgets every key and script."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(self.directory),
        ]  # fmt: skip
        self.process = subprocess.Popen(  # noqa: S603 - a fixed command line
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with Redis(port=self.port, socket_timeout=0.2) as client:
                    if client.ping():
                        return
            except (OSError, RedisConnectionError):
                time.sleep(0.05)
        pytest.fail("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)  # in case the test froze it
            kill_process_group(self.process)
            self.process = None

    def freeze(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is not on PATH and CI=true")
        pytest.skip("redis-server is not on PATH")
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class App:
    def __init__(self, server: RedisServer) -> None:
        self.registry = CollectorRegistry()
        self.redis = RedisStore.from_url(server.url, timeout=TIMEOUT_SECONDS)
        self.store = FailoverStore(self.redis, registry=self.registry, probe_interval=PROBE_SECONDS)
        limiter = RateLimiter(self.store, [LOGIN, API], key_prefix="t:")

        async def ok(request: Request) -> PlainTextResponse:
            return PlainTextResponse("ok")

        routes = [Route("/login", ok, methods=["POST"]), Route("/x", ok)]
        app = RateLimitMiddleware(Starlette(routes=routes), limiter=limiter)
        transport = httpx.ASGITransport(app=app, client=("192.0.2.1", 1))
        self.http = httpx.AsyncClient(transport=transport, base_url="http://t")

    def metric(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)


@pytest.fixture
async def app(redis_server: RedisServer) -> AsyncIterator[App]:
    built = App(redis_server)
    yield built
    await built.http.aclose()
    await built.redis.aclose()


async def test_stop_and_restart_the_redis_server(redis_server: RedisServer, app: App) -> None:
    assert (await app.http.post("/login")).status_code == 200
    assert (await app.http.get("/x")).status_code == 200
    assert len(await app.redis.client.keys("t:*")) == 2  # decided in Redis

    redis_server.stop()
    with capture_logs() as logs:
        login = await app.http.post("/login")
        api = [(await app.http.get("/x")).status_code for _ in range(3)]
    # Authentication fails closed: no limit, no login.
    assert login.status_code == 503
    assert login.json()["code"] == "protection_unavailable"
    assert login.headers["retry-after"] == "1"
    # The general budget fails open, but still limits: a fresh local bucket of 3.
    assert api == [200, 200, 200]
    assert (await app.http.get("/x")).status_code == 429
    assert [e["event"] for e in logs] == ["ratelimit_store_degraded"]
    assert app.metric("bastion_ratelimit_store_degraded") == 1
    assert app.metric("bastion_ratelimit_store_failovers_total") == 1
    assert app.metric("bastion_ratelimit_degraded_decisions_total", mode="fail_closed") == 1
    # 4 requests, and the audit deduplication of the refused one (also fail open).
    assert app.metric("bastion_ratelimit_degraded_decisions_total", mode="fail_open") == 5

    redis_server.start()  # same port; no persistence: keys and cached scripts are gone
    await asyncio.sleep(PROBE_SECONDS)
    with capture_logs() as logs:
        assert (await app.http.post("/login")).status_code == 200
    assert [e["event"] for e in logs] == ["ratelimit_store_recovered"]
    assert not app.store.degraded
    assert app.metric("bastion_ratelimit_store_degraded") == 0
    assert app.metric("bastion_ratelimit_store_recoveries_total") == 1
    assert len(await app.redis.client.keys("t:*")) == 2  # back to deciding in Redis


async def test_a_frozen_server_costs_one_timeout_then_fails_over(
    redis_server: RedisServer, app: App
) -> None:
    assert (await app.http.get("/x")).status_code == 200
    redis_server.freeze()
    try:
        started = time.monotonic()
        assert (await app.http.get("/x")).status_code == 200  # fail open, after the timeout
        first = time.monotonic() - started
        started = time.monotonic()
        assert (await app.http.post("/login")).status_code == 503
        second = time.monotonic() - started
    finally:
        redis_server.thaw()
    # One timeout (plus the immediate retry) for the request that discovered the failure; the
    # next one is answered at once, without waiting for Redis again.
    assert first < 4 * TIMEOUT_SECONDS + 0.5
    assert second < TIMEOUT_SECONDS
    await asyncio.sleep(PROBE_SECONDS)
    assert (await app.http.post("/login")).status_code == 200
    assert not app.store.degraded


async def test_backoff_follows_its_failure_mode(redis_server: RedisServer, app: App) -> None:
    closed, opened = (
        BackoffPolicy(name="pw"),
        BackoffPolicy(name="soft", failure_mode=FailureMode.FAIL_OPEN),
    )
    assert (await app.store.record_failure("t:bo", closed)).failures == 1.0
    redis_server.stop()
    with pytest.raises(StoreUnavailable):
        await app.store.record_failure("t:bo", closed)
    assert (await app.store.record_failure("t:bo", opened)).failures == 1.0  # local
    redis_server.start()
    await asyncio.sleep(PROBE_SECONDS)
    assert (await app.store.record_failure("t:bo2", closed)).failures == 1.0
    assert not app.store.degraded
