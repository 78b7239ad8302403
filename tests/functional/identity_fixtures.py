"""The fixtures most identity functional tests share: the real app on SQLite and PostgreSQL,
on the ``clock`` fixture (tests/conftest.py: frozen), an in-process client, and a registered,
verified account.

A test module binds the ones it uses to module names (pytest finds fixtures among a module's
names; an assignment, unlike an import, is not reported as redefined by each test's
parameters)::

    settings, app, client = (
        identity_fixtures.settings, identity_fixtures.app, identity_fixtures.client
    )

A fixture's name is the module name it is bound to, so the variants here serve under the
usual names: ``settings = identity_fixtures.sqlite_settings`` (a test that does not depend on
the database), ``clock = identity_fixtures.system_clock`` (real time),
``account = identity_fixtures.browser_account`` (registered through ``browser``, the https
client that keeps ``Secure`` cookies). A module with another variant defines it itself.
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

from bastion.clock import Clock, SystemClock
from bastion.config import Settings

__all__ = [
    "account",
    "app",
    "browser",
    "browser_account",
    "client",
    "settings",
    "sqlite_settings",
    "system_clock",
]


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Identity test settings on the parametrized database (SQLite and PostgreSQL)."""
    return identity_settings(tmp_path, database_url=database_url)


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    """Identity test settings on SQLite only."""
    return identity_settings(tmp_path)


@pytest.fixture
def system_clock() -> Clock:
    """Real time (e.g. revocation measured in seconds as it happens)."""
    return SystemClock()


@pytest.fixture
async def app(settings: Settings, clock: Clock) -> AsyncIterator[FastAPI]:
    async with running_app(settings, clock=clock) as application:
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as c:
        yield c


@pytest.fixture
async def browser(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A browser on the site's own origin (https, so ``Secure`` cookies are kept and sent)."""
    async with client_for(app, https=True) as c:
        yield c


@pytest.fixture
async def account(client: httpx.AsyncClient, settings: Settings) -> Account:
    return await create_account(client, settings)


@pytest.fixture
async def browser_account(browser: httpx.AsyncClient, settings: Settings) -> Account:
    return await create_account(browser, settings)
