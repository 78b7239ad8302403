"""How a revoked session's access tokens stop working within a bounded time.

Access tokens are verified offline (a signature and claims), so by themselves they stay valid
until they expire. Every token carries its session id (``sid``), and the authentication
dependency asks :class:`RevocationCache` whether that session was revoked. The cache holds the
ids of sessions revoked *recently*, and re-reads them from the database at most every
``bound`` seconds (default 5), on the first request after the interval:

    SELECT id FROM sessions WHERE revoked_at >= now - (access token lifetime + leeway + bound)

Only recent revocations matter: a session revoked longer ago than one access-token lifetime has
no unexpired token left (a revoked session gets no new ones), so the set stays small and memory
stays bounded however many sessions ever ended. Revocations made by this process enter the set
at once; those made by other workers or machines are seen at the next refresh. So a revoked
session's tokens are refused everywhere within ``bound`` seconds (plus one query's time), at the
cost of one small query per process per interval, whatever the request rate.

Once the set is :data:`REFRESH_AHEAD` of the bound old, the next request starts the refresh in the
background and is still answered from the set (which is within the bound): under steady load no
request waits for the query. Only a set as old as the bound makes requests wait for it.

When the database cannot answer, authentication fails closed (503) rather than trusting a stale
set beyond the bound (a failed background refresh changes nothing: the next request at the
bound tries again, in the foreground).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from bastion.clock import Clock
from bastion.identity.sessions.models import sessions
from bastion.storage import Database
from bastion.storage.errors import StorageError, StorageUnavailable

__all__ = ["REFRESH_AHEAD", "RevocationCache"]

#: Share of the bound after which a request refreshes the set in the background.
REFRESH_AHEAD = 0.8


class RevocationCache:
    """The ids of recently revoked sessions, at most ``bound_seconds`` stale."""

    def __init__(
        self,
        database: Database,
        clock: Clock,
        *,
        bound_seconds: float,
        window: timedelta,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._database = database
        self._clock = clock
        self.bound_seconds = bound_seconds
        self._window = window
        self._monotonic = monotonic  # immune to wall-clock changes
        self._revoked: set[str] = set()
        self._added_during_refresh: set[str] | None = None
        self._refreshed_at: float | None = None
        self._lock = asyncio.Lock()
        self._ahead: asyncio.Task[None] | None = None

    def add(self, session_ids: Iterable[str]) -> None:
        """Sessions this process just revoked (committed): refused from now on."""
        ids = set(session_ids)
        self._revoked |= ids
        if self._added_during_refresh is not None:
            self._added_during_refresh |= ids

    async def is_revoked(self, session_id: str) -> bool:
        """Whether ``session_id`` was revoked (as of at most ``bound_seconds`` ago).

        Raises ``StorageUnavailable`` when the set is stale and the database does not answer.
        """
        if self._older_than(self.bound_seconds):
            await self.refresh()
        elif self._ahead is None and self._older_than(self.bound_seconds * REFRESH_AHEAD):
            self._ahead = asyncio.create_task(self._refresh_ahead())
        return session_id in self._revoked

    def revoked_now(self, session_id: str) -> bool | None:
        """:meth:`is_revoked` answered without awaiting when the set is within the bound (the
        common case: no coroutine per request); ``None`` when it is not, and the caller must
        await :meth:`is_revoked` (which refreshes it). Starts the background refresh once the
        set is :data:`REFRESH_AHEAD` of the bound old, as :meth:`is_revoked` does."""
        refreshed_at = self._refreshed_at
        if refreshed_at is None:
            return None
        age = self._monotonic() - refreshed_at
        bound = self.bound_seconds
        if age >= bound:
            return None
        if self._ahead is None and age >= bound * REFRESH_AHEAD:
            self._ahead = asyncio.create_task(self._refresh_ahead())
        return session_id in self._revoked

    def _older_than(self, seconds: float) -> bool:
        return self._refreshed_at is None or self._monotonic() - self._refreshed_at >= seconds

    def _stale(self) -> bool:
        return self._older_than(self.bound_seconds)

    async def refresh(self) -> None:
        async with self._lock:
            if not self._stale():
                return  # refreshed while this coroutine waited for the lock
            await self._load()

    async def _refresh_ahead(self) -> None:
        try:
            async with self._lock:
                if self._older_than(self.bound_seconds * REFRESH_AHEAD):
                    # Failing here changes nothing: at the bound a request retries, and fails
                    # closed there if the database still does not answer.
                    with contextlib.suppress(StorageUnavailable):
                        await self._load()
        finally:
            self._ahead = None

    async def _load(self) -> None:
        started = self._monotonic()
        since = self._clock.now() - self._window
        query = select(sessions.c.id).where(sessions.c.revoked_at >= since)
        added: set[str] = set()
        self._added_during_refresh = added
        try:
            async with self._database.engine.connect() as connection:
                ids = {row.id for row in await connection.execute(query)}
        except (SQLAlchemyError, StorageError, OSError) as exc:
            raise StorageUnavailable from exc
        finally:
            self._added_during_refresh = None
        # Replace, don't merge: the set must not grow with every revocation ever made.
        # Local revocations that committed after the query's snapshot are kept.
        self._revoked = ids | added
        self._refreshed_at = started
