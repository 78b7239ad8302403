"""The served app (``bastion.asgi.app_from_env``) freezes the garbage collector's view of what
start-up created; apps built by other callers (tests) leave the collector alone."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
from tests.conftest import TEST_SECRET_KEY, migrated

from bastion.app import create_app
from bastion.asgi import app_from_env
from bastion.config.settings import Settings


@pytest.fixture
def served_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("BASTION_ENV", "test")
    monkeypatch.setenv("BASTION_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BASTION_SECRET_KEY", TEST_SECRET_KEY)
    return Settings()


async def test_served_app_freezes_startup_objects(served_env: Settings) -> None:
    await migrated(served_env.effective_database_url)
    app = app_from_env()
    gc.unfreeze()
    try:
        async with app.router.lifespan_context(app):
            assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


async def test_other_apps_leave_the_collector_alone(settings: Settings) -> None:
    await migrated(settings.effective_database_url)
    app = create_app(settings)
    gc.unfreeze()
    async with app.router.lifespan_context(app):
        assert gc.get_freeze_count() == 0
