"""Configuration changes recorded at startup (the app lifespan), and reads of the audit trail
from the command line recorded like the admin API's, on the real app and CLI."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import SecretStr
from tests.common.cli import run_cli
from tests.common.server import bastion_env
from tests.functional.identity_helpers import audit_rows, identity_settings, running_app

from bastion.config import Settings

SMTP_PASSWORD = "a-smtp-password-that-must-not-leak"
KEY = "k" * 48


async def test_startup_records_the_baseline_then_only_changes(
    tmp_path: Path, database_url: str
) -> None:
    settings = identity_settings(tmp_path, database_url=database_url)
    async with running_app(settings) as app:
        [first] = await audit_rows(app, "config:settings:changed")
    assert first["details"]["first_start"] is True
    async with running_app(settings) as app:
        # The same settings: nothing new.
        assert len(await audit_rows(app, "config:settings:changed")) == 1
    changed: Settings = settings.model_copy(
        update={"max_body_bytes": 2048, "smtp_password": SecretStr(SMTP_PASSWORD)}
    )
    async with running_app(changed) as app:
        rows = await audit_rows(app, "config:settings:changed")
    assert len(rows) == 2
    last = max(rows, key=lambda row: row["id"])
    assert last["details"]["changed"] == ["max_body_bytes", "smtp_password"]
    assert (last["actor"], last["subject"]) == ("system", "config:settings")
    assert SMTP_PASSWORD not in json.dumps(rows, default=str)


def test_reading_the_trail_from_the_cli_is_recorded(tmp_path: Path) -> None:
    env = bastion_env(tmp_path, BASTION_SECRET_KEY=KEY)
    assert run_cli(["migrate"], env).returncode == 0
    assert run_cli(["keys", "rotate"], env).returncode == 0
    first = run_cli(["audit", "search", "--json", "--type", "token:signing_key:rotated"], env)
    assert first.returncode == 0, first.stderr
    found = run_cli(["audit", "search", "--json", "--type", "audit:events:searched"], env)
    assert found.returncode == 0, found.stderr
    [event] = [json.loads(line) for line in found.stdout.splitlines()]
    assert event["actor"] == "cli"
    assert event["details"]["via"] == "cli"
    assert event["details"]["filter"] == {"types": ["token:signing_key:rotated"]}
    assert event["details"]["results"] == 1
