"""`bastion cleanup`: the clean-up on demand, for deployments that schedule it themselves."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select
from tests.common.cli import run_cli
from tests.common.server import bastion_env
from tests.functional.identity_helpers import identity_settings, running_app

from bastion.config import Settings
from bastion.identity.mail.models import mail_outbox
from bastion.storage import Database

SECRET = "c" * 48


async def _mails(url: str, *, add: dict[str, timedelta] | None = None) -> set[str]:
    database = Database(url)
    now = datetime.now(UTC)
    try:
        async with database.engine.begin() as connection:
            for mail_id, age in (add or {}).items():
                await connection.execute(
                    insert(mail_outbox).values(
                        id=mail_id,
                        recipient="ann@example.org",
                        subject="s",
                        body="",
                        kind="password_reset",
                        created_at=now - age,
                        next_attempt_at=now - age,
                        sent_at=now - age,
                        attempts=1,
                    )
                )
            return set((await connection.execute(select(mail_outbox.c.id))).scalars())
    finally:
        await database.dispose()


def test_cleanup_deletes_what_ended_and_reports_counts(tmp_path: Path) -> None:
    env = bastion_env(tmp_path, BASTION_SECRET_KEY=SECRET)
    assert run_cli(["migrate"], env).returncode == 0
    url = Settings(env="test", data_dir=tmp_path, secret_key=SECRET).effective_database_url
    asyncio.run(_mails(url, add={"old": timedelta(days=30), "new": timedelta(hours=1)}))

    result = run_cli(["cleanup"], env)

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["deleted"]["mails"] == 1
    assert asyncio.run(_mails(url)) == {"new"}


def test_unmigrated_database_is_refused(tmp_path: Path) -> None:
    result = run_cli(["cleanup"], bastion_env(tmp_path, BASTION_SECRET_KEY=SECRET))
    assert result.returncode == 2
    assert "bastion migrate" in result.stderr


async def test_each_worker_schedules_the_cleanup_unless_turned_off(tmp_path: Path) -> None:
    for interval, expected in ((3600, 1), (0, 0)):
        settings = identity_settings(tmp_path / str(interval), cleanup_interval_seconds=interval)
        async with running_app(settings) as app:
            periodic = app.state.services.identity.jobs._periodic
            # Other periodic jobs (e.g. the expiry of elevations) may share the runner.
            cleanup = [t for t in periodic if t.get_name() == "bastion-every-cleanup"]
            assert len(cleanup) == expected
