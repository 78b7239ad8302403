"""`bastion serve`: run Bastion under uvicorn.

Before serving, this process applies the production gate, migrates a SQLite database, and
prints a one-time setup token when no administrator exists yet; then it replaces itself with the
lean server process of :mod:`bastion.server` (same pid).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import typer

from bastion import logging as bastion_logging
from bastion.cli._common import fail, load_settings
from bastion.config.errors import InsecureConfigError
from bastion.config.production import enforce
from bastion.config.settings import Settings
from bastion.server import exec_server
from bastion.services import build_services
from bastion.storage import migrate as storage_migrate
from bastion.storage.errors import StorageError


async def _prepare(settings: Settings) -> str | None:
    """Migrate (SQLite) or verify the schema, then issue a setup token if one is needed."""
    url = settings.effective_database_url
    if settings.is_sqlite:
        await storage_migrate.upgrade(url)
    elif not await storage_migrate.is_up_to_date(url):
        raise StorageError("The database schema is not up to date: run `bastion migrate`.")
    services = build_services(settings)
    await services.start()
    try:
        return await services.setup_tokens.ensure_token_for_first_start()
    finally:
        await services.aclose()


def _print_setup_token(token: str, settings: Settings) -> None:
    minutes = settings.setup_token_ttl_seconds // 60
    # The terminal is the one place this secret may appear: never the logs or the audit trail.
    sys.stderr.write(
        "\n"
        "  No administrator exists yet. Create one with this one-time setup token\n"
        f"  (single use, expires in {minutes} minutes):\n\n"
        f"      {token}\n\n"
        "  It is consumed by POST /v1/setup (first administrator). Restart for a new one.\n\n"
    )
    sys.stderr.flush()


def serve(
    host: str | None = typer.Option(None, help="Bind address [BASTION_HOST, 127.0.0.1]."),
    port: int | None = typer.Option(None, help="Port [BASTION_PORT, 8000]."),
    workers: int = typer.Option(1, min=1, max=64, help="Worker processes."),
    tls_cert: Path | None = typer.Option(None, exists=True, dir_okay=False, help="PEM chain."),
    tls_key: Path | None = typer.Option(None, exists=True, dir_okay=False, help="PEM key."),
) -> None:
    """Serve Bastion over HTTP, or HTTPS (TLS 1.2 minimum) when given a certificate and key."""
    # Options become environment variables so every worker process reads the same settings.
    for name, value in (
        ("HOST", host),
        ("PORT", port),
        ("TLS_CERTFILE", tls_cert),
        ("TLS_KEYFILE", tls_key),
    ):
        if value is not None:
            os.environ[f"BASTION_{name}"] = str(value)
    settings = load_settings()
    bastion_logging.configure(settings.log_level, json=settings.log_json)
    if (settings.tls_certfile is None) != (settings.tls_keyfile is None):
        fail("TLS needs both a certificate and a key.")
    try:
        enforce(settings)
        token = asyncio.run(_prepare(settings))
    except InsecureConfigError as exc:
        fail(str(exc))
    except StorageError as exc:
        fail(str(exc))
    if token:
        _print_setup_token(token, settings)
    # The server runs in a fresh interpreter: this one imported the CLI, Alembic and every
    # service to prepare, and a worker should not carry them (bastion.server explains).
    exec_server(workers)
