"""The authorization store in Bastion's SQL database (SQLite and PostgreSQL).

Invariants:

- **Model versions are immutable.** Every model write inserts a new row; the latest version
  of a store is the one with the highest ``seq``. Nothing updates or deletes a version except
  the deletion of its store.
- **Writes are all or nothing.** One :meth:`SqlAuthzStore.write` is one transaction: a
  duplicate or missing tuple (without ``ignore``) rolls back every other change of the call.
- **Writers of a store are serialized on its row** (a no-op ``UPDATE`` that takes the row lock
  on PostgreSQL and the write lock on SQLite before anything else). Changelog ids are
  allocated after that lock, so within a store they grow in commit order: a reader polling
  ``id > last_seen`` can never miss a change committed later with a smaller id. The in-memory
  index of :mod:`bastion.authz.service` relies on this.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.authz.errors import (
    DuplicateTupleInWrite,
    ExceededEntityLimit,
    InvalidContinuationToken,
    InvalidWriteInput,
    LatestModelNotFound,
    ModelNotFound,
    StoreNotFound,
    WriteConflict,
)
from bastion.authz.store._rows import (
    absent,
    change_of,
    change_row,
    keys_in,
    model_of,
    present,
    store_of,
    tuple_of,
    tuple_row,
    userset_of,
)
from bastion.authz.store.ids import is_ulid, new_ulid
from bastion.authz.store.models import (
    OP_DELETE,
    OP_WRITE,
    authz_changes,
    authz_models,
    authz_stores,
    authz_tuples,
)
from bastion.authz.store.records import (
    Change,
    ModelRecord,
    OnDuplicate,
    OnMissing,
    Page,
    StoredTuple,
    StoreRecord,
    decode_token,
    encode_token,
    token_int,
)
from bastion.authz.tuples import Tuple
from bastion.clock import Clock, SystemClock
from bastion.storage import Database

__all__ = ["DEFAULT_MAX_TUPLES_PER_WRITE", "DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE", "SqlAuthzStore"]

#: OpenFGA's defaults: 50 items a page unless asked (at most 100), 100 tuples a write.
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
DEFAULT_MAX_TUPLES_PER_WRITE = 100
#: Changes read by the cache per round trip when catching up.
CATCH_UP_BATCH = 1000


def _page_size(page_size: int | None) -> int:
    if page_size is None or page_size <= 0:
        return DEFAULT_PAGE_SIZE
    return min(page_size, MAX_PAGE_SIZE)


class SqlAuthzStore:
    """Stores, model versions, tuples and the changelog, in the application database."""

    def __init__(
        self,
        database: Database,
        *,
        clock: Clock | None = None,
        max_tuples_per_write: int = DEFAULT_MAX_TUPLES_PER_WRITE,
    ) -> None:
        self._database = database
        self._clock = clock or SystemClock()
        self.max_tuples_per_write = max_tuples_per_write

    # ------------------------------------------------------------------ stores
    async def create_store(self, name: str) -> StoreRecord:
        now = self._clock.now()
        record = StoreRecord(new_ulid(now), name, now, now)
        async with self._database.session() as session:
            await session.execute(
                insert(authz_stores).values(id=record.id, name=name, created_at=now, updated_at=now)
            )
        return record

    async def ensure_store(self, store_id: str, name: str) -> StoreRecord:
        """The store ``store_id``, created with ``name`` if missing (idempotent, safe when
        several processes do it at once). For the reserved stores of
        :func:`~bastion.authz.store.ids.is_reserved`; any other id must be a ULID."""
        if not is_ulid(store_id):
            raise ValueError("a store id must be a ULID")
        try:
            return await self.get_store(store_id)
        except StoreNotFound:
            pass
        now = self._clock.now()
        try:
            async with self._database.session() as session:
                await session.execute(
                    insert(authz_stores).values(
                        id=store_id, name=name, created_at=now, updated_at=now
                    )
                )
        except IntegrityError:
            pass  # another process created it in between
        return await self.get_store(store_id)

    async def get_store(self, store_id: str) -> StoreRecord:
        """Raises StoreNotFound."""
        if not is_ulid(store_id):
            raise StoreNotFound
        async with self._database.engine.connect() as conn:
            query = select(authz_stores).where(authz_stores.c.id == store_id)
            row = (await conn.execute(query)).mappings().first()
        if row is None:
            raise StoreNotFound
        return store_of(row)

    async def list_stores(
        self, *, page_size: int | None = None, token: str = "", name: str | None = None
    ) -> Page[StoreRecord]:
        size = _page_size(page_size)
        query = select(authz_stores).order_by(authz_stores.c.id).limit(size + 1)
        if token:
            after = decode_token(token, "stores").get("id")
            if not isinstance(after, str) or not is_ulid(after):
                raise InvalidContinuationToken
            query = query.where(authz_stores.c.id > after)
        if name:
            query = query.where(authz_stores.c.name == name)
        async with self._database.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        items = tuple(store_of(r) for r in rows[:size])
        more = len(rows) > size
        return Page(items, encode_token("stores", {"id": items[-1].id}) if more else "")

    async def delete_store(self, store_id: str) -> None:
        """Delete the store with its models, tuples and changes. Raises StoreNotFound."""
        if not is_ulid(store_id):
            raise StoreNotFound
        async with self._database.session() as session:
            c = authz_stores.c
            # Children first: correct even where foreign keys are not enforced.
            for table in (authz_tuples, authz_changes, authz_models):
                await session.execute(delete(table).where(table.c.store_id == store_id))
            result = await session.execute(delete(authz_stores).where(c.id == store_id))
            if result.rowcount == 0:  # type: ignore[attr-defined]
                raise StoreNotFound

    # ------------------------------------------------------------------ models
    async def write_model(self, store_id: str, model: Mapping[str, Any]) -> ModelRecord:
        """Store a new immutable version of the store's model. Raises StoreNotFound.

        The caller validates the model first (``validate_model``)."""
        now = self._clock.now()
        body = {k: v for k, v in model.items() if k != "id"}
        version = str(body.get("schema_version", "1.1"))
        record = ModelRecord(new_ulid(now), store_id, version, body, now)
        async with self._database.session() as session:
            await self._lock_store(session, store_id)
            await session.execute(
                insert(authz_models).values(
                    id=record.id,
                    store_id=store_id,
                    schema_version=version,
                    model=body,
                    created_at=now,
                )
            )
        return record

    async def read_model(self, store_id: str, model_id: str | None = None) -> ModelRecord:
        """The version ``model_id``, or the latest. Raises StoreNotFound, ModelNotFound or
        LatestModelNotFound."""
        c = authz_models.c
        query = select(authz_models).where(c.store_id == store_id)
        if model_id:
            if not is_ulid(model_id):
                raise ModelNotFound(f"Authorization Model '{model_id}' not found")
            query = query.where(c.id == model_id)
        else:
            query = query.order_by(c.seq.desc()).limit(1)
        async with self._database.engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        if row is not None:
            return model_of(row)
        await self.get_store(store_id)
        if model_id:
            raise ModelNotFound(f"Authorization Model '{model_id}' not found")
        raise LatestModelNotFound(f"No authorization models found for store '{store_id}'")

    async def latest_model_id(self, store_id: str) -> str:
        """The id of the store's latest version (without loading the model). Raises
        StoreNotFound or LatestModelNotFound."""
        c = authz_models.c
        query = select(c.id).where(c.store_id == store_id).order_by(c.seq.desc()).limit(1)
        async with self._database.engine.connect() as conn:
            found = (await conn.execute(query)).scalar()
        if found is not None:
            return str(found)
        await self.get_store(store_id)
        raise LatestModelNotFound(f"No authorization models found for store '{store_id}'")

    async def list_models(
        self, store_id: str, *, page_size: int | None = None, token: str = ""
    ) -> Page[ModelRecord]:
        """Versions newest first. Raises StoreNotFound."""
        await self.get_store(store_id)
        size = _page_size(page_size)
        c = authz_models.c
        query = select(authz_models).where(c.store_id == store_id)
        if token:
            query = query.where(c.seq < token_int(decode_token(token, "models"), "seq"))
        query = query.order_by(c.seq.desc()).limit(size + 1)
        async with self._database.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        items = tuple(model_of(r) for r in rows[:size])
        more = len(rows) > size
        last = rows[size - 1]["seq"] if more else 0
        return Page(items, encode_token("models", {"seq": last}) if more else "")

    # ------------------------------------------------------------------ tuples
    async def write(
        self,
        store_id: str,
        writes: Sequence[Tuple] = (),
        deletes: Sequence[Tuple] = (),
        *,
        on_duplicate: OnDuplicate = OnDuplicate.ERROR,
        on_missing: OnMissing = OnMissing.ERROR,
    ) -> int:
        """Apply ``deletes`` then ``writes`` in one transaction; return the number of changes.

        Raises InvalidWriteInput (nothing to do), ExceededEntityLimit, DuplicateTupleInWrite,
        StoreNotFound or WriteConflict (the whole call is rolled back).
        """
        self._check_write_input(writes, deletes)
        now = self._clock.now()
        try:
            async with self._database.session() as session:
                await self._lock_store(session, store_id)
                # One read of every key involved, then bulk statements: a 100-tuple write is
                # a handful of round trips, and the store lock makes read-then-write race-free.
                existing = await self._existing(session, store_id, [*deletes, *writes])
                removed = present(deletes, existing, on_missing)
                added = absent(writes, existing, on_duplicate)
                if removed:
                    keys = [t.key for t in removed]
                    await session.execute(delete(authz_tuples).where(keys_in(store_id, keys)))
                if added:
                    await session.execute(
                        insert(authz_tuples), [tuple_row(store_id, t, now) for t in added]
                    )
                changes = [change_row(store_id, OP_DELETE, t, now) for t in removed]
                changes += [change_row(store_id, OP_WRITE, t, now) for t in added]
                if changes:
                    await session.execute(insert(authz_changes), changes)
        except IntegrityError as exc:  # pragma: no cover - writers are serialized per store
            raise WriteConflict from exc
        return len(changes)

    def _check_write_input(self, writes: Sequence[Tuple], deletes: Sequence[Tuple]) -> None:
        if not writes and not deletes:
            raise InvalidWriteInput
        if len(writes) + len(deletes) > self.max_tuples_per_write:
            raise ExceededEntityLimit(
                f"The number of write operations exceeds the allowed limit of "
                f"{self.max_tuples_per_write}"
            )
        seen: set[tuple[str, str, str]] = set()
        for t in (*writes, *deletes):
            if t.key in seen:
                raise DuplicateTupleInWrite(
                    f"duplicate tuple in write: user: '{t.user}', relation: '{t.relation}', "
                    f"object: '{t.object}'"
                )
            seen.add(t.key)

    async def _lock_store(self, session: AsyncSession, store_id: str) -> None:
        """Take the store's write lock (see the module docstring). Raises StoreNotFound."""
        if not is_ulid(store_id):
            raise StoreNotFound
        c = authz_stores.c
        result = await session.execute(update(authz_stores).where(c.id == store_id).values(id=c.id))
        if result.rowcount == 0:  # type: ignore[attr-defined]
            raise StoreNotFound

    async def _existing(
        self, session: AsyncSession, store_id: str, tuples: Sequence[Tuple]
    ) -> dict[tuple[str, str, str], tuple[str | None, Any]]:
        """The stored condition of each of these keys that exists."""
        c = authz_tuples.c
        query = select(c.object, c.relation, c.user, c.condition_name, c.condition_context)
        rows = await session.execute(query.where(keys_in(store_id, [t.key for t in tuples])))
        return {(r[0], r[1], r[2]): (r[3], r[4]) for r in rows}

    async def read(
        self,
        store_id: str,
        *,
        object: str | None = None,  # noqa: A002 - OpenFGA's field name
        relation: str | None = None,
        user: str | None = None,
        page_size: int | None = None,
        token: str = "",
    ) -> Page[StoredTuple]:
        """Tuples matching the filter (``object`` may be ``type:`` for every object of a type).
        Raises StoreNotFound, InvalidContinuationToken."""
        await self.get_store(store_id)
        size = _page_size(page_size)
        c = authz_tuples.c
        query = select(authz_tuples).where(c.store_id == store_id)
        if object:
            otype, _, oid = object.partition(":")
            query = query.where(c.object == object) if oid else query.where(c.object_type == otype)
        if relation:
            query = query.where(c.relation == relation)
        if user:
            query = query.where(c.user == user)
        if token:
            query = query.where(c.id > token_int(decode_token(token, "read"), "id"))
        query = query.order_by(c.id).limit(size + 1)
        async with self._database.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        items = tuple(StoredTuple(tuple_of(r), r["created_at"]) for r in rows[:size])
        more = len(rows) > size
        last = rows[size - 1]["id"] if more else 0
        return Page(items, encode_token("read", {"id": last}) if more else "")

    async def delete_object(self, store_id: str, entity: str) -> int:
        """Delete every tuple on ``entity`` and every tuple granting something to it (as a
        user or through one of its usersets); return how many. Raises StoreNotFound."""
        c = authz_tuples.c
        match = or_(c.object == entity, c.user == entity, userset_of(entity))
        return await self._cascade(store_id, match)

    async def delete_user(self, store_id: str, user: str) -> int:
        """Delete every tuple whose user is exactly ``user``; return how many."""
        return await self._cascade(store_id, authz_tuples.c.user == user)

    async def _cascade(self, store_id: str, match: ColumnElement[bool]) -> int:
        now = self._clock.now()
        where = and_(authz_tuples.c.store_id == store_id, match)
        async with self._database.session() as session:
            await self._lock_store(session, store_id)
            rows = (await session.execute(select(authz_tuples).where(where))).mappings().all()
            if not rows:
                return 0
            await session.execute(delete(authz_tuples).where(where))
            changes = [change_row(store_id, OP_DELETE, tuple_of(r), now) for r in rows]
            await session.execute(insert(authz_changes), changes)
        return len(rows)

    # ------------------------------------------------------------------ changelog
    async def read_changes(
        self,
        store_id: str,
        *,
        object_type: str | None = None,
        page_size: int | None = None,
        token: str = "",
        start_time: datetime | None = None,
    ) -> Page[Change]:
        """Changes oldest first. The token of the last page points after its last change, so
        a poller passes it again to get what happened since (OpenFGA's behaviour)."""
        await self.get_store(store_id)
        size = _page_size(page_size)
        c = authz_changes.c
        query = select(authz_changes).where(c.store_id == store_id)
        if object_type:
            query = query.where(c.object_type == object_type)
        if token:
            position = decode_token(token, "changes")
            if position.get("type", "") != (object_type or ""):
                raise InvalidContinuationToken(
                    "The type in the querystring and the continuation token don't match"
                )
            query = query.where(c.id > token_int(position, "id"))
        elif start_time is not None:
            query = query.where(c.created_at >= start_time)
        query = query.order_by(c.id).limit(size)
        async with self._database.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        items = tuple(change_of(r) for r in rows)
        if not items:
            return Page(items, token)
        position = {"id": items[-1].id, "type": object_type or ""}
        return Page(items, encode_token("changes", position))

    async def changes_after(
        self, store_id: str, after_id: int, *, limit: int = CATCH_UP_BATCH
    ) -> list[Change]:
        """At most ``limit`` changes of the store with an id above ``after_id``, in order."""
        c = authz_changes.c
        query = (
            select(authz_changes)
            .where(c.store_id == store_id, c.id > after_id)
            .order_by(c.id)
            .limit(limit)
        )
        async with self._database.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [change_of(r) for r in rows]

    async def snapshot(self, store_id: str) -> tuple[list[Tuple], int]:
        """Every tuple of the store and a changelog position to catch up from.

        The position is read *before* the tuples: a change committed in between is then both
        in the tuples and replayed after the position, and replaying is idempotent (add and
        remove by key, in order), so the index converges to the database."""
        c = authz_changes.c
        async with self._database.engine.connect() as conn:
            position = (
                await conn.execute(select(func.max(c.id)).where(c.store_id == store_id))
            ).scalar()
            rows = (
                (
                    await conn.execute(
                        select(authz_tuples).where(authz_tuples.c.store_id == store_id)
                    )
                )
                .mappings()
                .all()
            )
        return [tuple_of(r) for r in rows], int(position or 0)

    async def last_change_id(self, store_id: str) -> int:
        """The id of the store's latest change (0 when it has none)."""
        c = authz_changes.c
        async with self._database.engine.connect() as conn:
            value = (
                await conn.execute(select(func.max(c.id)).where(c.store_id == store_id))
            ).scalar()
        return int(value or 0)
