"""Dead letters in the database (:class:`DatabaseDeadLetters`) and in memory (tests)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import SQLAlchemyError

from bastion.audit.recorder import scrub
from bastion.clock import Clock
from bastion.monitoring.alerts import Alert
from bastion.monitoring.errors import DeadLetterStoreFailed
from bastion.monitoring.interfaces import DeadLetter
from bastion.monitoring.models import alert_dead_letters
from bastion.storage import Database, StorageError

MAX_LIST = 500
_ERROR_CHARS = 255


def _letter(
    alert: Alert, *, channel: str, destination: str, attempts: int, error: str, now: datetime
) -> DeadLetter:
    return DeadLetter(
        id=str(uuid.uuid4()),
        alert_id=alert.id,
        channel=channel,
        destination=destination[:64],
        detector=alert.detector.value,
        severity=alert.severity.value,
        payload=scrub(alert.payload()),
        attempts=attempts,
        last_error=error[:_ERROR_CHARS],
        created_at=now,
    )


class DatabaseDeadLetters:
    def __init__(self, database: Database, *, clock: Clock) -> None:
        self._database = database
        self._clock = clock

    async def add(
        self, alert: Alert, *, channel: str, destination: str, attempts: int, last_error: str
    ) -> DeadLetter:
        letter = _letter(
            alert,
            channel=channel,
            destination=destination,
            attempts=attempts,
            error=last_error,
            now=self._clock.now(),
        )
        values: dict[str, Any] = {
            name: getattr(letter, name)
            for name in alert_dead_letters.columns.keys()  # noqa: SIM118
        }
        try:
            async with self._database.engine.begin() as connection:
                await connection.execute(insert(alert_dead_letters).values(**values))
        except (SQLAlchemyError, StorageError, OSError) as exc:
            raise DeadLetterStoreFailed from exc
        return letter

    async def list(self, *, limit: int = 50, before: datetime | None = None) -> list[DeadLetter]:
        c = alert_dead_letters.c
        query = select(alert_dead_letters).order_by(c.created_at.desc(), c.id.desc())
        if before is not None:
            query = query.where(c.created_at < before)
        query = query.limit(max(1, min(limit, MAX_LIST)))
        async with self._database.engine.connect() as connection:
            rows = (await connection.execute(query)).mappings().all()
        return [DeadLetter(**dict(row)) for row in rows]


class MemoryDeadLetters:
    """Dead letters kept in a list (tests)."""

    def __init__(self, *, clock: Clock) -> None:
        self._clock = clock
        self.letters: list[DeadLetter] = []

    async def add(
        self, alert: Alert, *, channel: str, destination: str, attempts: int, last_error: str
    ) -> DeadLetter:
        letter = _letter(
            alert,
            channel=channel,
            destination=destination,
            attempts=attempts,
            error=last_error,
            now=self._clock.now(),
        )
        self.letters.append(letter)
        return letter

    async def list(self, *, limit: int = 50, before: datetime | None = None) -> list[DeadLetter]:
        found = [x for x in reversed(self.letters) if before is None or x.created_at < before]
        return found[: max(1, min(limit, MAX_LIST))]
