"""`bastion check`: audit the effective configuration."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import typer
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from bastion.checks import Finding, Severity, run_all
from bastion.cli._common import load_settings
from bastion.config.errors import ConfigError
from bastion.config.settings import Settings
from bastion.storage.errors import StorageError


def _database_exists(settings: Settings) -> bool:
    """False for a SQLite file not created yet: `check` must not create one."""
    url = make_url(settings.effective_database_url)
    return not settings.is_sqlite or bool(url.database and Path(url.database).is_file())


async def _database_findings(settings: Settings) -> list[Finding]:
    """Findings that need the database (signing-key age); none when it is unreachable or not
    migrated: `check` audits configuration first and must work before the first start."""
    from bastion.authz.builtin.audits import admin_findings  # noqa: PLC0415 - CLI only
    from bastion.identity.audits import signing_key_findings  # noqa: PLC0415 - CLI only
    from bastion.services import build_services  # noqa: PLC0415 - CLI only
    from bastion.storage import migrate  # noqa: PLC0415 - CLI only

    try:
        if not await migrate.is_up_to_date(settings.effective_database_url):
            return []
        services = build_services(settings)
    except (StorageError, ConfigError):
        return []
    try:
        findings = await signing_key_findings(services)
        return findings + await admin_findings(services.system_admin.system)
    except (StorageError, SQLAlchemyError, OSError):
        return []
    finally:
        await services.identity.passwords.aclose()
        await services.database.dispose()


def check(
    as_json: bool = typer.Option(False, "--json", help="One JSON object per finding."),
) -> None:
    """Audit the effective configuration; exit 1 when any finding is high severity."""
    settings = load_settings()
    findings = run_all(settings)
    if _database_exists(settings):
        findings += asyncio.run(_database_findings(settings))
    findings.sort(key=lambda f: (-f.severity, f.code))
    for finding in findings:
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "code": finding.code,
                        "severity": str(finding.severity),
                        "message": finding.message,
                        "fix": finding.fix,
                        "blocks_production": finding.blocks_production,
                    }
                )
            )
        else:
            typer.echo(f"[{str(finding.severity).upper():6}] {finding.code}: {finding.message}")
            typer.echo(f"         fix: {finding.fix}")
    high = sum(1 for f in findings if f.severity >= Severity.HIGH)
    if not as_json:
        typer.echo(f"{len(findings)} finding(s), {high} high (env={settings.env}).")
    if high:
        raise typer.Exit(1)
