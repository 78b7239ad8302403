"""The per-process tuple index: one :class:`MemoryTupleIndex` per store, kept current from
the changelog, with per-request consistency.

- ``HIGHER_CONSISTENCY``: before evaluating, the index applies every change the database
  holds beyond its position (one indexed query), so a tuple deleted by any process a moment
  ago is never honoured.
- ``MINIMIZE_LATENCY`` (and OpenFGA's ``UNSPECIFIED``): the index is used as it is when it
  was last caught up at most ``staleness_seconds`` ago; otherwise it catches up first. A write
  made through this process marks its store stale, so the writer reads its own writes.

Refresh ahead of the bound: once a fresh index is past half its bound, the next use starts a
catch-up in the background and keeps answering from the index as it is (still within the
bound). A catch-up collects every page of changes first and applies them in one synchronous
step, so no check sees part of a transaction. Only a request that arrives once the bound has
really passed (the refresh failed or is slow) waits, on the lock the refresh holds.

Only tuples are cached, never decisions: conditions (an expiry, an IP range) are evaluated at
every check against that request's context, so an expired grant is never honoured from here.

A full load builds millions of long-lived objects at once (1,000,000 tuples: about 2.8 million
that the cyclic garbage collector tracks). The synchronous build runs with the collector paused
(it creates no cycles; a 1,000,000-tuple load spent 8.5 s of its 29.5 s in 20 full collections),
and a served worker freezes a large index once built (``on_loaded``, set by
:func:`bastion.app.create_app`): otherwise every later full collection walks it, a pause of
seconds on the event loop.

Correctness of ``id > position`` polling rests on the store's invariant that changelog ids
grow in commit order within a store (:mod:`bastion.authz.store.sql`).
"""

from __future__ import annotations

import asyncio
import enum
import gc
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from bastion.authz.store import Change, Operation, SqlAuthzStore
from bastion.authz.tuples import MemoryTupleIndex, Tuple
from bastion.logging import get_logger

__all__ = ["Consistency", "IndexCache"]

logger = get_logger("bastion.authz")


class Consistency(enum.StrEnum):
    """OpenFGA's ``ConsistencyPreference``."""

    UNSPECIFIED = "UNSPECIFIED"
    MINIMIZE_LATENCY = "MINIMIZE_LATENCY"
    HIGHER_CONSISTENCY = "HIGHER_CONSISTENCY"


#: A full load of at least this many tuples calls ``IndexCache.on_loaded``.
LARGE_INDEX = 50_000

#: "Never caught up": forces a catch-up on the next use.
_NEVER = float("-inf")


@dataclass
class _StoreIndex:
    index: MemoryTupleIndex = field(default_factory=MemoryTupleIndex)
    position: int = 0
    synced_at: float = _NEVER
    loaded: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: Catch-ups begun, and the number of the last one that completed (see ``get``).
    begun: int = 0
    completed: int = 0
    #: Writes through this process so far (``invalidate``): a catch-up that began before one
    #: may have missed it, and leaves the index stale.
    writes: int = 0
    #: The background catch-up in flight, if any.
    refresh: asyncio.Task[None] | None = None


def build_index(tuples: list[Tuple]) -> MemoryTupleIndex:
    """The index of ``tuples``, built with the cyclic garbage collector paused: the build
    makes only acyclic containers, and each full collection it would trigger walks every
    object built so far (quadratic in the store's size). Synchronous, so nothing else runs on
    this thread's event loop while the collector is off."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return MemoryTupleIndex(tuples)
    finally:
        if enabled:
            gc.enable()


def apply(index: MemoryTupleIndex, change: Change) -> None:
    """Replay one change; idempotent (add and remove by key)."""
    t = change.tuple
    if change.operation is Operation.WRITE:
        index.add(t)
    else:
        index.remove(t.object, t.relation, t.user)


class IndexCache:
    """Indexes of at most ``max_stores`` stores (least recently used evicted)."""

    def __init__(
        self,
        store: SqlAuthzStore,
        *,
        staleness_seconds: float,
        max_stores: int,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._staleness = staleness_seconds
        self._refresh_after = staleness_seconds / 2
        self._max_stores = max_stores
        self._monotonic = monotonic
        self._indexes: OrderedDict[str, _StoreIndex] = OrderedDict()
        self._refreshes: set[asyncio.Task[None]] = set()
        #: Catch-ups that found changes to apply, and full loads (for metrics and tests).
        self.catch_ups = 0
        self.loads = 0
        #: Called after a full load of at least :data:`LARGE_INDEX` tuples (served workers:
        #: freeze the new index out of the garbage collector's full collections).
        self.on_loaded: Callable[[], None] | None = None

    async def get(self, store_id: str, consistency: Consistency) -> MemoryTupleIndex:
        """The store's index, caught up as ``consistency`` requires."""
        entry = self._entry(store_id)
        latency = consistency is not Consistency.HIGHER_CONSISTENCY
        if latency and self._fresh(store_id, entry):
            return entry.index
        asked = entry.begun
        async with entry.lock:
            # Requests that queued behind a catch-up reuse it: one query per stale interval
            # under load, not one per waiting request. HIGHER_CONSISTENCY reuses only one that
            # *began* after it asked (it saw every change committed before the request).
            if entry.completed <= asked and not (latency and self._fresh(store_id, entry)):
                await self._catch_up(store_id, entry)
        return entry.index

    def ready(self, store_id: str) -> MemoryTupleIndex | None:
        """What :meth:`get` answers without waiting, for a consistency other than
        ``HIGHER_CONSISTENCY``: the store's index when it is loaded and fresh (and then the
        most recently used), else None."""
        entry = self._indexes.get(store_id)
        if entry is None or not self._fresh(store_id, entry):
            return None
        self._indexes.move_to_end(store_id)
        return entry.index

    def _fresh(self, store_id: str, entry: _StoreIndex) -> bool:
        """Whether MINIMIZE_LATENCY may use the index as it is (loaded, caught up at most the
        bound ago). Past half the bound, this starts a background catch-up (one at a time)."""
        age = self._monotonic() - entry.synced_at
        if not entry.loaded or age > self._staleness:
            return False
        if age > self._refresh_after and entry.refresh is None:
            task = asyncio.get_running_loop().create_task(self._refresh(store_id, entry))
            entry.refresh = task
            self._refreshes.add(task)
            task.add_done_callback(self._refreshes.discard)
        return True

    async def _refresh(self, store_id: str, entry: _StoreIndex) -> None:
        """The background catch-up: on failure the index stays as it was, and the first
        request past the bound catches up itself (and answers the error)."""
        try:
            async with entry.lock:
                # Skipped when a request caught up while this waited for the lock.
                if self._monotonic() - entry.synced_at > self._refresh_after:
                    await self._catch_up(store_id, entry)
        except Exception as exc:  # noqa: BLE001 - a background task: logged, never raised
            logger.warning("authz index refresh failed", store=store_id, error=type(exc).__name__)
        finally:
            entry.refresh = None

    async def aclose(self) -> None:
        """Cancel the background catch-ups in flight (shutdown)."""
        tasks = list(self._refreshes)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def invalidate(self, store_id: str) -> None:
        """Mark the store's index stale (after a write through this process)."""
        entry = self._indexes.get(store_id)
        if entry is not None:
            entry.synced_at = _NEVER
            entry.writes += 1

    def forget(self, store_id: str) -> None:
        """Drop the store's index (the store was deleted)."""
        self._indexes.pop(store_id, None)

    def _entry(self, store_id: str) -> _StoreIndex:
        entry = self._indexes.get(store_id)
        if entry is None:
            entry = self._indexes[store_id] = _StoreIndex()
            while len(self._indexes) > self._max_stores:
                self._indexes.popitem(last=False)
        else:
            self._indexes.move_to_end(store_id)
        return entry

    async def _catch_up(self, store_id: str, entry: _StoreIndex) -> None:
        started = self._monotonic()
        writes = entry.writes
        entry.begun += 1
        number = entry.begun
        index, position = entry.index, entry.position
        if not entry.loaded:
            tuples, position = await self._store.snapshot(store_id)
            index = build_index(tuples)
            self.loads += 1
            if self.on_loaded is not None and len(tuples) >= LARGE_INDEX:
                del tuples
                self.on_loaded()
        pending: list[Change] = []
        while True:
            changes = await self._store.changes_after(store_id, position)
            if not changes:
                break
            pending += changes
            position = changes[-1].id
        # One synchronous step from here on: checks run between the awaits above (the index
        # is used while this catches up), and a transaction's changes may span pages.
        if pending:
            self.catch_ups += 1
            for change in pending:
                apply(index, change)
        entry.index, entry.position, entry.loaded = index, position, True
        # The index reflects the database as of ``started`` (the queries began after it),
        # unless this process wrote meanwhile: that write may be missing, so still stale.
        if entry.writes == writes:
            entry.synced_at = started
        entry.completed = number
