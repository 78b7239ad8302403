"""`bastion audit`: verify the chain, checkpoints, retention, search, the event catalog.

Exit codes of ``bastion audit verify``:

- ``0``: the chain is intact (and the checkpoint, if given, is proven);
- ``1``: tampering found: the first modified, deleted, inserted or reordered event is named;
- ``2``: the settings or the database cannot be used (not migrated, unreachable);
- ``3``: the checkpoint file is not a valid checkpoint (format, signature, issuer).

``bastion audit catalog --check`` exits 1 when ``docs/audit-events.md`` is stale. Every other
subcommand exits 0 on success and 2 when the settings or the database cannot be used. Logs go
to stderr so that stdout carries only the command's output (JSON lines with ``--json``).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer

from bastion import logging as bastion_logging
from bastion.audit.catalog import render_catalog
from bastion.audit.errors import CheckpointInvalid, InvalidCursor
from bastion.audit.events import AuditEvent, EventType, Outcome
from bastion.audit.query import MAX_PAGE, EventFilter, EventRecord
from bastion.audit.verify import Checkpoint, VerifyReport
from bastion.cli._common import EXIT_CONFIG, fail, load_settings
from bastion.config.settings import Settings
from bastion.services import Services, build_services
from bastion.storage import migrate as storage_migrate
from bastion.storage.errors import StorageError

app = typer.Typer(
    help="The audit trail: verify, checkpoints, retention, search.", no_args_is_help=True
)
checkpoint_app = typer.Typer(help="Signed checkpoints of the audit chain.", no_args_is_help=True)
app.add_typer(checkpoint_app, name="checkpoint")

EXIT_TAMPERED = 1
EXIT_CHECKPOINT_INVALID = 3
DEFAULT_CATALOG = Path("docs/audit-events.md")
#: The actor of events the command line records (no authenticated user: the operator).
CLI_ACTOR = "cli"


def _settings() -> Settings:
    settings = load_settings()
    bastion_logging.configure(settings.log_level, json=settings.log_json, stream=sys.stderr)
    return settings


@asynccontextmanager
async def _services(settings: Settings) -> AsyncIterator[Services]:
    if not await storage_migrate.is_up_to_date(settings.effective_database_url):
        raise StorageError("The database schema is not up to date: run `bastion migrate`.")
    services = build_services(settings)
    await services.audit.start()
    try:
        yield services
    finally:
        await services.audit.aclose()
        await services.identity.passwords.aclose()
        await services.database.dispose()


def _run(coroutine: Any) -> Any:
    try:
        return asyncio.run(coroutine)
    except StorageError as exc:
        fail(str(exc))


# -- verify ------------------------------------------------------------------------------------
async def _verify(
    settings: Settings, checkpoint_file: bytes | None, jwks: dict[str, Any] | None
) -> VerifyReport:
    async with _services(settings) as services:
        log = services.audit_log
        checkpoint = None
        if checkpoint_file is not None:
            claims = await log.trusted_checkpoint(checkpoint_file, jwks)
            checkpoint = Checkpoint(claims.seq, claims.mac)
        report = await log.verify(checkpoint)
        services.audit.record(
            AuditEvent(
                type=EventType.AUDIT_CHAIN_VERIFIED,
                outcome=Outcome.SUCCESS if report.intact else Outcome.FAILURE,
                time=services.clock.now(),
                subject="audit:chain",
                reason=report.problem.kind.value if report.problem else None,
                details=_report_json(report),
            )
        )
        return report


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise CheckpointInvalid("The JWK Set file is not readable JSON.") from None
    if not isinstance(value, dict):
        raise CheckpointInvalid("The JWK Set file is not a JWK Set.")
    return value


def _report_json(report: VerifyReport) -> dict[str, Any]:
    problem = report.problem
    return {
        "intact": report.intact,
        "problem": None
        if problem is None
        else {"kind": problem.kind.value, "seq": problem.seq, "id": problem.id},
        "anchor_seq": report.anchor_seq,
        "head_seq": report.head_seq,
        "checked": report.checked,
        "legacy_rows": report.legacy_rows,
        "checkpoint_seq": report.checkpoint.seq if report.checkpoint else None,
    }


@app.command("verify")
def verify(
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", exists=True, dir_okay=False, help="Prove this exported checkpoint."
    ),
    jwks: Path | None = typer.Option(
        None, "--jwks", exists=True, dir_okay=False, help="JWK Set to check the checkpoint with."
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object."),
) -> None:
    """Walk the audit chain; name the first bad event. Exit 0 intact, 1 tampered, 3 bad
    checkpoint."""
    settings = _settings()
    try:
        data = checkpoint.read_bytes() if checkpoint is not None else None
        key_set = _read_json(jwks) if jwks is not None else None
        report: VerifyReport = _run(_verify(settings, data, key_set))
    except CheckpointInvalid as exc:
        typer.echo(f"bastion: checkpoint invalid: {exc.detail}", err=True)
        raise typer.Exit(EXIT_CHECKPOINT_INVALID) from None
    if as_json:
        typer.echo(json.dumps(_report_json(report)))
    elif report.problem is None:
        proven = f"; checkpoint at seq {report.checkpoint.seq} proven" if report.checkpoint else ""
        legacy = f"; {report.legacy_rows} older unchained event(s)" if report.legacy_rows else ""
        typer.echo(
            f"audit chain intact: {report.checked} event(s), seq {report.anchor_seq + 1}.."
            f"{report.head_seq}{proven}{legacy}"
        )
    else:
        typer.echo(f"audit chain TAMPERED: {report.problem.describe()}")
    if not report.intact:
        raise typer.Exit(EXIT_TAMPERED)


# -- checkpoints -------------------------------------------------------------------------------
async def _create(settings: Settings) -> dict[str, Any] | None:
    async with _services(settings) as services:
        checkpoint = await services.audit_log.create_checkpoint()
        return None if checkpoint is None else checkpoint.export()


async def _latest(settings: Settings) -> dict[str, Any] | None:
    async with _services(settings) as services:
        found = await services.audit_log.checkpoints(limit=1)
        return found[0].export() if found else None


def _emit(document: dict[str, Any], output: Path | None) -> None:
    text = json.dumps(document, indent=2) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"checkpoint written to {output}", err=True)


@checkpoint_app.command("create")
def checkpoint_create(
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the export here."),
) -> None:
    """Sign and store the current chain head now; print (or write) its export."""
    document = _run(_create(_settings()))
    if document is None:
        fail("the audit chain is empty: nothing to checkpoint")
    _emit(document, output)


@checkpoint_app.command("export")
def checkpoint_export(
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the export here."),
    create: bool = typer.Option(False, "--create", help="Sign a fresh checkpoint first."),
) -> None:
    """Export the newest signed checkpoint for an outside party to keep."""
    settings = _settings()
    document = _run(_create(settings) if create else _latest(settings))
    if document is None:
        fail("no checkpoint yet: run `bastion audit checkpoint create`")
    _emit(document, output)


# -- retention ---------------------------------------------------------------------------------
async def _purge(settings: Settings, days: int) -> tuple[int, int | None, str | None]:
    async with _services(settings) as services:
        before = services.clock.now() - timedelta(days=days)
        result = await services.audit_log.purge(before)
        refused = (
            result.refused.problem.describe() if result.refused and result.refused.problem else None
        )
        return result.deleted, result.anchor.seq if result.anchor else None, refused


@app.command("purge")
def purge(
    older_than_days: int | None = typer.Option(
        None, min=1, help="Purge events older than this [BASTION_AUDIT_RETENTION_DAYS]."
    ),
) -> None:
    """Delete events past retention, anchoring the chain at a signed checkpoint. Refused (exit
    1) when the chain does not verify: tampered evidence is never deleted."""
    settings = _settings()
    days = older_than_days or settings.audit_retention_days
    if not days:
        fail("retention is off (BASTION_AUDIT_RETENTION_DAYS=0): give --older-than-days")
    deleted, anchor, refused = _run(_purge(settings, days))
    if refused:
        typer.echo(f"purge refused: the chain does not verify ({refused})", err=True)
        raise typer.Exit(EXIT_TAMPERED)
    where = f"; chain now starts after seq {anchor}" if anchor is not None else ""
    typer.echo(f"purged {deleted} event(s) older than {days} day(s){where}")


# -- search ------------------------------------------------------------------------------------
def _when(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--{name} must be an ISO 8601 date or time")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


async def _search(
    settings: Settings, query: EventFilter, cursor: str | None, limit: int
) -> tuple[list[EventRecord], str | None]:
    async with _services(settings) as services:
        found, next_cursor = await services.audit_log.search(query, cursor=cursor, limit=limit)
        # Reading the trail is itself recorded (it holds personal data: IPs, user agents), as
        # the admin API records it; the operator at the shell is the actor.
        services.audit.record(
            AuditEvent(
                type=EventType.AUDIT_EVENTS_SEARCHED,
                outcome=Outcome.SUCCESS,
                time=services.clock.now(),
                actor=CLI_ACTOR,
                subject="audit:events",
                details={"filter": query.described(), "results": len(found), "via": "cli"},
            )
        )
        return list(found), next_cursor


def record_json(record: EventRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "seq": record.seq,
        "time": record.time.isoformat(),
        "type": record.type,
        "outcome": record.outcome,
        "actor": record.actor,
        "subject": record.subject,
        "ip": record.client_ip,
        "user_agent": record.user_agent,
        "request_id": record.request_id,
        "reason": record.reason,
        "details": record.details,
    }


@app.command("search")
def search(  # noqa: PLR0917 - one option per filter (Typer reads the signature)
    since: str | None = typer.Option(None, help="From this time (ISO 8601, UTC if no zone)."),
    until: str | None = typer.Option(None, help="Before this time (ISO 8601)."),
    event_type: list[str] = typer.Option([], "--type", help="Event type (repeatable)."),
    outcome: Outcome | None = typer.Option(None, help="success, failure or unknown."),
    actor: str | None = typer.Option(None, help="Exact actor, e.g. user:<id>."),
    subject: str | None = typer.Option(None, help="Exact subject, e.g. user:<id>."),
    ip: str | None = typer.Option(None, help="Client IP address."),
    request_id: str | None = typer.Option(None, help="X-Request-ID of one request."),
    limit: int = typer.Option(50, min=1, max=MAX_PAGE, help="Events per page."),
    cursor: str | None = typer.Option(None, help="next_cursor of the previous page."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per event."),
) -> None:
    """Search the audit trail, newest first (the same filters as the admin API)."""
    settings = _settings()
    unknown = [t for t in event_type if t not in EventType._value2member_map_]
    if unknown:
        fail(f"unknown event type(s): {', '.join(unknown)} (see `bastion audit catalog`)")
    query = EventFilter(
        since=_when(since, "since"),
        until=_when(until, "until"),
        types=tuple(event_type),
        outcome=outcome.value if outcome else None,
        actor=actor,
        subject=subject,
        client_ip=ip,
        request_id=request_id,
    )
    try:
        found, next_cursor = _run(_search(settings, query, cursor, limit))
    except InvalidCursor:
        fail("invalid cursor (it belongs to another search, or was altered)")
    for record in found:
        if as_json:
            typer.echo(json.dumps(record_json(record)))
        else:
            who = f" actor={record.actor}" if record.actor else ""
            what = f" subject={record.subject}" if record.subject else ""
            typer.echo(
                f"{record.time.isoformat()} #{record.seq or '-'} {record.type} "
                f"{record.outcome}{who}{what} ip={record.client_ip or '-'}"
            )
    if next_cursor:
        typer.echo(f"next cursor: {next_cursor}", err=True)


# -- catalog -----------------------------------------------------------------------------------
@app.command("catalog")
def catalog(
    output: Path = typer.Option(DEFAULT_CATALOG, "--output", "-o", help="Markdown file."),
    check: bool = typer.Option(False, "--check", help="Exit 1 if the file is stale."),
) -> None:
    """Write the event catalog (docs/audit-events.md) from the EventType enum."""
    text = render_catalog()
    if check:
        current = output.read_text(encoding="utf-8") if output.is_file() else ""
        if current != text:
            typer.echo(f"{output} is stale: run `bastion audit catalog`", err=True)
            raise typer.Exit(1)
        typer.echo(f"{output} is up to date")
        return
    output.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {output}")


__all__ = ["EXIT_CONFIG", "app"]
