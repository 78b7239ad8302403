"""`bastion cleanup`: delete ended sessions, used or expired account tokens and old mails now.

Each worker already does this every ``BASTION_CLEANUP_INTERVAL_SECONDS``; the command is for
deployments that turn that off (``0``) and schedule the clean-up themselves (cron, a Kubernetes
CronJob), and for operators who want it done at once. What is deleted, and when, is described
in :mod:`bastion.identity.cleanup`.
"""

from __future__ import annotations

import asyncio
import json

import typer

from bastion import logging as bastion_logging
from bastion.cli._common import fail, load_settings
from bastion.config.settings import Settings
from bastion.services import build_services
from bastion.storage import migrate as storage_migrate
from bastion.storage.errors import StorageError


async def _cleanup(settings: Settings) -> dict[str, int]:
    if not await storage_migrate.is_up_to_date(settings.effective_database_url):
        raise StorageError("The database schema is not up to date: run `bastion migrate`.")
    services = build_services(settings)
    try:
        report = await services.identity.cleanup.run()
    finally:
        await services.identity.passwords.aclose()
        await services.database.dispose()
    return report.as_dict()


def cleanup() -> None:
    """Delete rows that ended more than BASTION_CLEANUP_RETENTION_SECONDS ago; print counts."""
    settings = load_settings()
    bastion_logging.configure(settings.log_level, json=settings.log_json)
    try:
        counts = asyncio.run(_cleanup(settings))
    except StorageError as exc:
        fail(str(exc))
    typer.echo(json.dumps({"deleted": counts}))
