"""`bastion alerts dead-letters`: the dead letters stored by a worker, listed by the CLI."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.common.cli import run_cli
from tests.common.server import bastion_env
from tests.unit.monitoring.helpers import an_alert

from bastion.clock import FrozenClock
from bastion.monitoring.deadletters import DatabaseDeadLetters
from bastion.storage import Database


async def _store_one(url: str) -> str:
    database = Database(url)
    try:
        letter = await DatabaseDeadLetters(database, clock=FrozenClock()).add(
            an_alert(), channel="webhook", destination="soc", attempts=6, last_error="http_503"
        )
    finally:
        await database.dispose()
    return letter.alert_id


def test_dead_letters_are_listed(tmp_path: Path) -> None:
    env = bastion_env(tmp_path, BASTION_SECRET_KEY="k" * 48)
    assert run_cli(["migrate"], env).returncode == 0
    assert run_cli(["alerts", "dead-letters"], env).stdout == ""
    alert_id = asyncio.run(_store_one(f"sqlite+aiosqlite:///{tmp_path / 'bastion.db'}"))
    result = run_cli(["alerts", "dead-letters", "--json"], env)
    assert result.returncode == 0, result.stderr
    [letter] = [json.loads(line) for line in result.stdout.splitlines()]
    assert letter["alert"]["id"] == alert_id
    assert letter["last_error"] == "http_503"
    assert "http_503" in run_cli(["alerts", "dead-letters"], env).stdout
