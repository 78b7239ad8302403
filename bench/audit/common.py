"""Shared by the audit benchmarks: fresh databases, events, the chain key."""

from __future__ import annotations

import os
import secrets
import subprocess
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import asyncpg
from sqlalchemy.engine import make_url

from bastion.audit.chain import ChainKeys
from bastion.audit.events import AuditEvent, EventType, Outcome
from bastion.crypto import Keyring
from bastion.storage.migrate import upgrade

POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
KEYS = ChainKeys.from_keyring(Keyring(b"bench-root-key-" * 3))
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def event(n: int) -> AuditEvent:
    """A realistic event: a failed login with the fields a request fills in."""
    return AuditEvent(
        type=EventType.IDENTITY_LOGIN_FAILED,
        outcome=Outcome.FAILURE,
        time=T0 + timedelta(milliseconds=n),
        subject=f"user:{n % 5000:08d}-0000-4000-8000-000000000000",
        client_ip=f"198.18.{n // 256 % 256}.{n % 256}",
        user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
        request_id=f"{n:032x}",
        reason="wrong_password",
        details={"transport": "bearer", "attempt": n % 7},
    )


def machine() -> str:
    load = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    return f"{datetime.now(UTC):%Y-%m-%d %H:%M UTC}; {load}"


@asynccontextmanager
async def fresh_database(backend: str) -> AsyncIterator[str]:
    """A migrated, empty database URL: a SQLite file, or a new PostgreSQL database."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/bench.db"
        await upgrade(url)
        yield url
        return
    name = f"bastion_bench_{secrets.token_hex(4)}"  # hex only: safe in DDL
    admin = await asyncpg.connect(POSTGRES_URL, timeout=5)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = make_url(POSTGRES_URL).set(drivername="postgresql+asyncpg", database=name)
        text = url.render_as_string(hide_password=False)
        await upgrade(text)
        yield text
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
