"""`bastion migrate`: apply database migrations."""

from __future__ import annotations

import asyncio

import typer

from bastion.cli._common import fail, load_settings
from bastion.storage import migrate as storage_migrate
from bastion.storage.errors import StorageError


def migrate(
    revision: str = typer.Argument("head", help="Target revision (default: the newest)."),
) -> None:
    """Apply the database migrations up to REVISION."""
    settings = load_settings()
    try:
        asyncio.run(storage_migrate.upgrade(settings.effective_database_url, revision))
        current = asyncio.run(storage_migrate.current_revision(settings.effective_database_url))
    except StorageError as exc:
        fail(str(exc))
    typer.echo(f"database at revision {current}")
