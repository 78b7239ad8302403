"""`bastion keys`: the access-token signing keys (list, rotate).

``rotate`` makes a new active key at once; the previous one stops signing but stays published
in ``/.well-known/jwks.json`` until every token it signed has expired. Run it on a schedule or
after a suspected compromise (and after changing ``BASTION_SECRET_KEY``, which leaves the old
keys unreadable). Workers pick the new key up within seconds.
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

app = typer.Typer(help="Access-token signing keys.", no_args_is_help=True)


async def _rotate(settings: Settings) -> str:
    if not await storage_migrate.is_up_to_date(settings.effective_database_url):
        raise StorageError("The database schema is not up to date: run `bastion migrate`.")
    services = build_services(settings)
    await services.audit.start()
    try:
        key = await services.identity.signing.rotate()
    finally:
        await services.audit.aclose()
        await services.identity.passwords.aclose()
        await services.database.dispose()
    return key.kid


async def _list(settings: Settings) -> list[dict[str, str]]:
    if not await storage_migrate.is_up_to_date(settings.effective_database_url):
        raise StorageError("The database schema is not up to date: run `bastion migrate`.")
    services = build_services(settings)
    try:
        keys = await services.access_tokens.keys.verification_keys()
        now = services.clock.now()
        return [
            {
                "kid": key.kid,
                "algorithm": key.algorithm.value,
                "created_at": key.created_at.isoformat(),
                "not_after": key.not_after.isoformat(),
                "state": "active" if key.signs_at(now) else "retired",
            }
            for key in keys
        ]
    finally:
        await services.identity.passwords.aclose()
        await services.database.dispose()


@app.command("rotate")
def rotate() -> None:
    """Make a new active signing key; the old one only verifies until its tokens expire."""
    settings = load_settings()
    bastion_logging.configure(settings.log_level, json=settings.log_json)
    try:
        kid = asyncio.run(_rotate(settings))
    except StorageError as exc:
        fail(str(exc))
    typer.echo(f"new active signing key: {kid}")


@app.command("list")
def list_keys(
    as_json: bool = typer.Option(False, "--json", help="One JSON object per key."),
) -> None:
    """Show every published key (active and retired-but-verifying). Public data only."""
    settings = load_settings()
    bastion_logging.configure(settings.log_level, json=settings.log_json)
    try:
        keys = asyncio.run(_list(settings))
    except StorageError as exc:
        fail(str(exc))
    for key in keys:
        if as_json:
            typer.echo(json.dumps(key))
        else:
            typer.echo(
                f"{key['kid']}  {key['algorithm']:8} {key['state']:8} until {key['not_after']}"
            )
