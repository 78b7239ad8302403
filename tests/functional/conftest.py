"""The real app, on a real (SQLite) database, driven in-process through httpx."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field
from tests.common.server import LiveServer, start_server, stop_server
from tests.conftest import migrated

from bastion.app import create_app
from bastion.config import Settings
from bastion.identity.passwords import PasswordSettings

TEST_SECRET_KEY = "test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"


class EchoIn(BaseModel):
    """A strict request model like every Bastion route's: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=64)
    count: int = Field(default=0, ge=0, le=1000)


class EchoOut(BaseModel):
    name: str


def add_test_routes(app: FastAPI) -> None:
    """Routes that exist only in tests, to drive the middleware with JSON bodies and failures."""

    @app.post("/test/echo", response_model=EchoOut)
    async def echo(body: EchoIn) -> EchoOut:
        return EchoOut(name=body.name)

    @app.get("/test/boom")
    async def boom() -> dict[str, str]:
        raise RuntimeError("SELECT password FROM users WHERE id=1 -- /etc/bastion/secret.key")


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "env": "test",
        "data_dir": tmp_path,
        "secret_key": TEST_SECRET_KEY,
        "allowed_hosts": ["testserver", "127.0.0.1", "localhost"],
        # Mails as files in tmp_path/mail (tests read tokens there); Argon2 at its cheapest
        # where hashing cost is not the point (tests about it pass their own PasswordSettings).
        "mailer": "file",
        "passwords": PasswordSettings(
            hash_memory_kib=1024, hash_time_cost=1, allow_insecure_hash_parameters=True
        ),
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    await migrated(settings.effective_database_url)
    application = create_app(settings)
    add_test_routes(application)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(tmp_path_factory.mktemp("live"))
    yield server
    stop_server(server)
