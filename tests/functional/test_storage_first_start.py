"""First start, as `bastion serve` does it: migrate, issue a setup token, audit it, persist it."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from bastion.audit.events import EventType
from bastion.audit.models import audit_events
from bastion.config.settings import Settings
from bastion.services import build_services
from bastion.storage import migrate


async def _first_start(settings: Settings) -> str | None:
    await migrate.upgrade(settings.effective_database_url)
    services = build_services(settings)
    await services.start()
    try:
        return await services.setup_tokens.ensure_token_for_first_start()
    finally:
        await services.aclose()


async def _audit_types(settings: Settings) -> list[str]:
    services = build_services(settings)
    try:
        async with services.database.session() as session:
            result = await session.execute(select(audit_events.c.type).order_by(audit_events.c.id))
            # Setup-token events only (a first start also records its signing key's creation).
            return [t for t in result.scalars() if t.startswith("system:setup_token:")]
    finally:
        await services.aclose()


async def test_first_start_issues_a_token_until_setup_is_done(settings: Settings) -> None:
    token = await _first_start(settings)
    assert token is not None
    assert (Path(settings.data_dir) / "bastion.db").is_file()
    # A restart before setup supersedes the printed token with a new one.
    again = await _first_start(settings)
    assert again is not None
    assert again != token

    services = build_services(settings)
    await services.start()
    try:
        await services.setup_tokens.consume(again)
    finally:
        await services.aclose()

    assert await _first_start(settings) is None
    assert await _audit_types(settings) == [
        EventType.SYSTEM_SETUP_TOKEN_ISSUED,
        EventType.SYSTEM_SETUP_TOKEN_ISSUED,
        EventType.SYSTEM_SETUP_TOKEN_CONSUMED,
    ]
