"""The fixtures most identity functional tests share: the real app on SQLite and PostgreSQL,
on the ``clock`` fixture (tests/conftest.py: frozen), an in-process client, and a registered,
verified account.

A test module binds the ones it uses to module names (pytest finds fixtures among a module's
names; an assignment, unlike an import, is not reported as redefined by each test's
parameters)::

    settings, app, client = (
        identity_fixtures.settings, identity_fixtures.app, identity_fixtures.client
    )

A module that needs a variant defines that fixture itself: ``settings`` on SQLite only, or
``clock`` returning a ``SystemClock`` for real time; the others still come from here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from tests.functional.identity_helpers import (
    Account,
    client_for,
    create_account,
    identity_settings,
    running_app,
)

from bastion.clock import Clock
from bastion.config import Settings

__all__ = ["account", "app", "client", "settings"]


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Identity test settings on the parametrized database (SQLite and PostgreSQL)."""
    return identity_settings(tmp_path, database_url=database_url)


@pytest.fixture
async def app(settings: Settings, clock: Clock) -> AsyncIterator[FastAPI]:
    async with running_app(settings, clock=clock) as application:
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as c:
        yield c


@pytest.fixture
async def account(client: httpx.AsyncClient, settings: Settings) -> Account:
    return await create_account(client, settings)
