"""`bastion alerts`: the alerts no webhook accepted (dead letters).

``dead-letters`` lists them newest first, one line each (or one JSON object per line with
``--json``, the whole alert included), so an operator can replay them to the receiver by hand.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import typer

from bastion import logging as bastion_logging
from bastion.cli._common import fail, load_settings
from bastion.clock import SystemClock
from bastion.config.settings import Settings
from bastion.monitoring.deadletters import MAX_LIST, DatabaseDeadLetters
from bastion.storage import Database
from bastion.storage import migrate as storage_migrate
from bastion.storage.errors import StorageError

app = typer.Typer(help="Security alerts.", no_args_is_help=True)


async def _dead_letters(settings: Settings, limit: int) -> list[dict[str, Any]]:
    if not await storage_migrate.is_up_to_date(settings.effective_database_url):
        raise StorageError("The database schema is not up to date: run `bastion migrate`.")
    database = Database.from_settings(settings)
    try:
        letters = await DatabaseDeadLetters(database, clock=SystemClock()).list(limit=limit)
    finally:
        await database.dispose()
    return [
        {
            "id": x.id,
            "created_at": x.created_at.isoformat(),
            "destination": x.destination,
            "detector": x.detector,
            "severity": x.severity,
            "attempts": x.attempts,
            "last_error": x.last_error,
            "alert": x.payload,
        }
        for x in letters
    ]


@app.command("dead-letters")
def dead_letters(
    limit: int = typer.Option(50, min=1, max=MAX_LIST, help="How many, newest first."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per dead letter."),
) -> None:
    """List alerts that a webhook never accepted after every retry."""
    settings = load_settings()
    bastion_logging.configure(settings.log_level, json=settings.log_json)
    try:
        letters = asyncio.run(_dead_letters(settings, limit))
    except StorageError as exc:
        fail(str(exc))
    for letter in letters:
        if as_json:
            typer.echo(json.dumps(letter, sort_keys=True))
        else:
            typer.echo(
                f"{letter['created_at']}  {letter['destination']:12} {letter['severity']:8} "
                f"{letter['detector']:20} {letter['attempts']} tries  {letter['last_error']}  "
                f"alert {letter['alert'].get('id')}"
            )
