""":class:`AuditLog`: the audit trail's operations beyond recording, in one object.

Verification, signed checkpoints, retention (purge) and the periodic job that runs the last two,
plus the subscription point for code that reacts to stored events. The app builds one per
process (``services.audit_log``); the CLI builds its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import SQLAlchemyError

from bastion.audit.chain import ChainKeys, checkpoint_tag
from bastion.audit.checkpoints import (
    CheckpointClaims,
    export_document,
    parse_export,
    sign_checkpoint,
    verify_checkpoint,
)
from bastion.audit.errors import CheckpointInvalid
from bastion.audit.events import AuditEvent, EventType, Outcome
from bastion.audit.export import EcsFileSink, SyslogSink
from bastion.audit.interfaces import AuditRecorder, AuditSink, AuditSubscriber
from bastion.audit.models import HEAD_ROW_ID, audit_chain_head, audit_checkpoints, audit_events
from bastion.audit.query import DEFAULT_PAGE, CursorCodec, EventFilter, EventRecord, search
from bastion.audit.sinks import DatabaseSink, LogSink, lock_head
from bastion.audit.verify import Checkpoint, VerifyReport, tag_ok, verify_chain
from bastion.clock import Clock
from bastion.config.settings import Settings
from bastion.crypto import KeyPurpose, Keyring
from bastion.identity.tokens.keys import SigningKey
from bastion.logging import get_logger
from bastion.storage import Database
from bastion.storage.errors import StorageError

__all__ = ["AuditLog", "PurgeResult", "StoredCheckpoint", "export_sinks"]

logger = get_logger("bastion.audit")

#: Returns the key that signs now (``SigningKeyManager.ensure``).
SigningKeySource = Callable[[], Awaitable[SigningKey]]
#: The periodic job wakes at least this often (and at the checkpoint interval when shorter).
MAINTENANCE_TICK_SECONDS = 3600.0
#: The first round waits a little: workers starting together do not all sign at once, and a
#: process that only runs a CLI command or a short test does no maintenance.
MAINTENANCE_FIRST_DELAY_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    id: int
    seq: int
    mac: str
    created_at: datetime
    kid: str
    token: str
    public_jwk: dict[str, Any]

    def export(self) -> dict[str, Any]:
        return export_document(self.token, self.public_jwk)


@dataclass(frozen=True, slots=True)
class PurgeResult:
    deleted: int
    #: The chain now starts after this checkpoint (None: nothing was purged).
    anchor: StoredCheckpoint | None
    #: Set when the purge was refused because the chain does not verify.
    refused: VerifyReport | None = None


class AuditLog:
    def __init__(
        self,
        database: Database,
        keys: ChainKeys,
        sink: DatabaseSink,
        *,
        signing_key: SigningKeySource,
        issuer: str,
        recorder: AuditRecorder,
        clock: Clock,
        retention: timedelta | None,
        checkpoint_interval: timedelta | None,
        cursor_key: bytes,
    ) -> None:
        self.database = database
        self.cursors = CursorCodec(cursor_key)
        self.keys = keys
        self.sink = sink
        self._signing_key = signing_key
        self._issuer = issuer
        self._recorder = recorder
        self._clock = clock
        self.retention = retention
        self.checkpoint_interval = checkpoint_interval
        self._task: asyncio.Task[None] | None = None

    def subscribe(self, subscriber: AuditSubscriber) -> None:
        """See :class:`~bastion.audit.interfaces.AuditSubscriber`."""
        self.sink.subscribe(subscriber)

    # -- search -----------------------------------------------------------------------------
    async def search(
        self, query: EventFilter, *, cursor: str | None = None, limit: int = DEFAULT_PAGE
    ) -> tuple[Sequence[EventRecord], str | None]:
        """A page of events matching ``query``, newest first, and the next page's cursor.

        Raises :class:`~bastion.audit.errors.InvalidCursor` for a cursor this server did not
        make for this query."""
        before = None if cursor is None else self.cursors.decode(cursor, query)
        found, next_id = await search(self.database, query, before_id=before, limit=limit)
        return found, None if next_id is None else self.cursors.encode(next_id, query)

    # -- verification -----------------------------------------------------------------------
    async def verify(self, checkpoint: Checkpoint | None = None) -> VerifyReport:
        return await verify_chain(self.database, self.keys, checkpoint=checkpoint)

    async def trusted_checkpoint(
        self, data: bytes, jwks: dict[str, Any] | None
    ) -> CheckpointClaims:
        """The claims of an export file, once its signature is trusted: against ``jwks`` (a
        JWK Set the verifier obtained itself), or, without one, only if the very same token is
        stored here with a valid tag. Raises :class:`CheckpointInvalid`."""
        token, _embedded = parse_export(data)
        if jwks is not None:
            claims = verify_checkpoint(token, jwks)
        else:
            stored = await self._stored_by_token(token)
            if stored is None:
                raise CheckpointInvalid(
                    "Unknown checkpoint: give the JWK Set to check its signature."
                )
            claims = verify_checkpoint(token, {"keys": [stored.public_jwk]})
        if claims.issuer != self._issuer:
            raise CheckpointInvalid("The checkpoint was issued by another issuer.")
        return claims

    async def _stored_by_token(self, token: str) -> StoredCheckpoint | None:
        c = audit_checkpoints.c
        async with self.database.engine.connect() as connection:
            rows = (
                await connection.execute(select(audit_checkpoints).where(c.token == token))
            ).all()
        for row in rows:
            if self._tag_ok(row):
                return _checkpoint(row)
        return None

    def _tag_ok(self, row: Any) -> bool:
        return tag_ok(self.keys, row)

    # -- checkpoints ------------------------------------------------------------------------
    async def create_checkpoint(self) -> StoredCheckpoint | None:
        """Sign and store the current chain head; None while the chain is empty."""
        async with self.database.engine.connect() as connection:
            head = (
                await connection.execute(
                    select(audit_chain_head.c.seq, audit_chain_head.c.mac).where(
                        audit_chain_head.c.id == HEAD_ROW_ID
                    )
                )
            ).first()
        if head is None or head.seq == 0:
            return None
        checkpoint = await self._store_checkpoint(head.seq, head.mac)
        self._record(EventType.AUDIT_CHECKPOINT_CREATED, {"seq": head.seq, "kid": checkpoint.kid})
        return checkpoint

    async def _store_checkpoint(
        self, seq: int, mac: str, connection: Any = None, key: SigningKey | None = None
    ) -> StoredCheckpoint:
        key = key or await self._signing_key()
        now = self._clock.now()
        token, _ = sign_checkpoint(key, issuer=self._issuer, seq=seq, mac=mac, at=now)
        public_jwk = key.public_jwk()
        values = {
            "seq": seq,
            "mac": mac,
            "created_at": now,
            "kid": key.kid,
            "token": token,
            "public_jwk": public_jwk,
            "tag": checkpoint_tag(self.keys.current, seq, mac, token),
        }
        if connection is None:
            async with self.database.engine.begin() as own:
                new_id = await self._insert_checkpoint(own, values)
        else:
            new_id = await self._insert_checkpoint(connection, values)
        return StoredCheckpoint(new_id, seq, mac, now, key.kid, token, public_jwk)

    @staticmethod
    async def _insert_checkpoint(connection: Any, values: dict[str, Any]) -> int:
        result = await connection.execute(
            audit_checkpoints.insert().values(**values).returning(audit_checkpoints.c.id)
        )
        return int(result.scalar_one())

    async def checkpoints(self, *, limit: int = 1) -> list[StoredCheckpoint]:
        """The newest ``limit`` stored checkpoints that carry a valid tag, newest first."""
        c = audit_checkpoints.c
        query = select(audit_checkpoints).order_by(c.seq.desc(), c.id.desc()).limit(limit * 4)
        async with self.database.engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        return [_checkpoint(row) for row in rows if self._tag_ok(row)][:limit]

    # -- retention --------------------------------------------------------------------------
    async def purge(self, before: datetime) -> PurgeResult:
        """Delete the events older than ``before`` from the start of the chain, leaving a signed
        checkpoint of the last deleted event as the chain's new anchor (one transaction).

        Refuses (``refused`` set) when the chain does not verify: deleting tampered rows would
        destroy the evidence. Events newer than ``before`` are never deleted, so an old event
        chained after a newer one waits for the next purge.
        """
        cutoff = await self._purge_cutoff(before)
        if cutoff is None:
            return PurgeResult(0, None)
        report = await self.verify()
        if not report.intact:
            logger.error(
                "audit_purge_refused", problem=report.problem.describe() if report.problem else ""
            )
            return PurgeResult(0, None, refused=report)
        e = audit_events.c
        # Fetched first: making a key may write to the database, which must not wait on the
        # chain lock this transaction is about to take.
        key = await self._signing_key()
        async with self.database.engine.begin() as connection:
            await lock_head(connection)
            anchor = await connection.scalar(
                select(audit_chain_head.c.anchor_seq).where(audit_chain_head.c.id == HEAD_ROW_ID)
            )
            if anchor is not None and anchor >= cutoff:
                return PurgeResult(0, None)  # another worker purged meanwhile
            mac = await connection.scalar(select(e.mac).where(e.seq == cutoff))
            if mac is None:
                return PurgeResult(0, None)
            checkpoint = await self._store_checkpoint(cutoff, mac, connection, key)
            chained = await connection.execute(delete(audit_events).where(e.seq <= cutoff))
            legacy = await connection.execute(
                delete(audit_events).where(e.seq.is_(None), e.time < before)
            )
            await connection.execute(
                update(audit_chain_head)
                .where(audit_chain_head.c.id == HEAD_ROW_ID)
                .values(anchor_seq=cutoff, anchor_mac=mac)
            )
        deleted = int(chained.rowcount or 0) + int(legacy.rowcount or 0)
        self._record(
            EventType.AUDIT_EVENTS_PURGED,
            {"deleted": deleted, "anchor_seq": cutoff, "before": before.isoformat()},
        )
        return PurgeResult(deleted, checkpoint)

    async def _purge_cutoff(self, before: datetime) -> int | None:
        """The last seq to purge: just before the first event at or after ``before``."""
        e = audit_events.c
        head = audit_chain_head.c
        async with self.database.engine.connect() as connection:
            state = (
                await connection.execute(
                    select(head.seq, head.anchor_seq).where(head.id == HEAD_ROW_ID)
                )
            ).first()
            if state is None:
                return None
            first_kept = await connection.scalar(
                select(func.min(e.seq)).where(e.time >= before, e.seq > state.anchor_seq)
            )
        cutoff = state.seq if first_kept is None else int(first_kept) - 1
        return cutoff if cutoff > state.anchor_seq else None

    # -- the periodic job -------------------------------------------------------------------
    async def maintain(self) -> None:
        """One round of the periodic job: a checkpoint when one is due, then the purge."""
        now = self._clock.now()
        if self.checkpoint_interval is not None:
            latest = await self.checkpoints(limit=1)
            if not latest or latest[0].created_at <= now - self.checkpoint_interval:
                head = await self._head_seq()
                if not latest or head > latest[0].seq:
                    await self.create_checkpoint()
        if self.retention is not None:
            await self.purge(now - self.retention)

    async def _head_seq(self) -> int:
        async with self.database.engine.connect() as connection:
            seq = await connection.scalar(
                select(audit_chain_head.c.seq).where(audit_chain_head.c.id == HEAD_ROW_ID)
            )
        return int(seq or 0)

    async def start(self) -> None:
        """Start the periodic job (checkpoints, retention) unless both are off."""
        if self._task is None and (self.retention or self.checkpoint_interval):
            self._task = asyncio.create_task(self._run(), name="bastion-audit-maintenance")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        tick = MAINTENANCE_TICK_SECONDS
        if self.checkpoint_interval is not None:
            tick = min(tick, self.checkpoint_interval.total_seconds())
        await asyncio.sleep(min(tick, MAINTENANCE_FIRST_DELAY_SECONDS))
        while True:
            try:
                await self.maintain()
            except (SQLAlchemyError, StorageError, OSError) as exc:
                logger.warning("audit_maintenance_failed", error=type(exc).__name__)
            except Exception as exc:  # noqa: BLE001 - the job must survive to run again
                logger.error("audit_maintenance_failed", error=type(exc).__name__)  # noqa: TRY400
            await asyncio.sleep(tick)

    def _record(self, type_: EventType, details: dict[str, Any]) -> None:
        self._recorder.record(
            AuditEvent(
                type=type_,
                outcome=Outcome.SUCCESS,
                time=self._clock.now(),
                subject="audit:chain",
                details=details,
            )
        )


def export_sinks(settings: Settings) -> list[AuditSink]:
    """The SIEM sinks the settings turn on (log lines, rotating file, syslog)."""
    sinks: list[AuditSink] = [LogSink()] if settings.audit_log_sink else []
    if settings.audit_export_file is not None:
        sinks.append(
            EcsFileSink(
                settings.audit_export_file,
                max_bytes=settings.audit_export_file_max_bytes,
                backups=settings.audit_export_file_backups,
            )
        )
    if settings.audit_syslog_url:
        sinks.append(SyslogSink(settings.audit_syslog_url, app_name=settings.audit_syslog_app_name))
    return sinks


def _days(value: int) -> timedelta | None:
    return timedelta(days=value) if value else None


def _seconds(value: int) -> timedelta | None:
    return timedelta(seconds=value) if value else None


def build_audit_log(
    settings: Settings,
    *,
    database: Database,
    keys: ChainKeys,
    sink: DatabaseSink,
    signing_key: SigningKeySource,
    recorder: AuditRecorder,
    clock: Clock,
    keyring: Keyring,
) -> AuditLog:
    return AuditLog(
        database,
        keys,
        sink,
        signing_key=signing_key,
        issuer=settings.access_tokens.issuer,
        recorder=recorder,
        clock=clock,
        retention=_days(settings.audit_retention_days),
        checkpoint_interval=_seconds(settings.audit_checkpoint_interval_seconds),
        cursor_key=keyring.derive(KeyPurpose.SIGNED_VALUES),
    )


def _checkpoint(row: Any) -> StoredCheckpoint:
    return StoredCheckpoint(
        int(row.id),
        int(row.seq),
        str(row.mac),
        row.created_at,
        str(row.kid),
        str(row.token),
        dict(row.public_jwk),
    )
