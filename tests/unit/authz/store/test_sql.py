"""The SQL authorization store, on SQLite and PostgreSQL (the ``database`` fixture)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select

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
from bastion.authz.store import (
    OnDuplicate,
    OnMissing,
    Operation,
    SqlAuthzStore,
    is_reserved,
    is_ulid,
)
from bastion.authz.store.models import authz_changes, authz_tuples
from bastion.authz.tuples import Tuple
from bastion.clock import FrozenClock
from bastion.storage import Database

MODEL = {
    "schema_version": "1.1",
    "type_definitions": [
        {"type": "user"},
        {
            "type": "document",
            "relations": {"viewer": {"this": {}}},
            "metadata": {
                "relations": {"viewer": {"directly_related_user_types": [{"type": "user"}]}}
            },
        },
    ],
}

ANNE = Tuple("document:1", "viewer", "user:anne")
BOB = Tuple("document:1", "viewer", "user:bob")
EXPIRING = Tuple(
    "document:2", "viewer", "user:anne", "not_expired", {"granted": "2026-01-01T00:00:00Z"}
)


@pytest.fixture
def store(database: Database, clock: FrozenClock) -> SqlAuthzStore:
    return SqlAuthzStore(database, clock=clock)


async def test_stores_have_ulid_ids_and_can_be_listed_paged_and_deleted(
    store: SqlAuthzStore,
) -> None:
    created = [await store.create_store(f"s{i}") for i in range(3)]
    assert all(is_ulid(s.id) for s in created)
    assert (await store.get_store(created[0].id)).name == "s0"

    first = await store.list_stores(page_size=2)
    assert len(first.items) == 2
    assert first.continuation_token
    second = await store.list_stores(page_size=2, token=first.continuation_token)
    assert {s.id for s in first.items + second.items} == {s.id for s in created}
    assert second.continuation_token == ""
    assert [s.name for s in (await store.list_stores(name="s1")).items] == ["s1"]

    await store.delete_store(created[0].id)
    with pytest.raises(StoreNotFound):
        await store.get_store(created[0].id)
    with pytest.raises(StoreNotFound):
        await store.delete_store(created[0].id)


async def test_unknown_or_malformed_store_ids_are_not_found(store: SqlAuthzStore) -> None:
    for bad in ("01ARZ3NDEKTSV4RRFFQ69G5FAV", "not-a-ulid", "' OR 1=1 --"):
        with pytest.raises(StoreNotFound):
            await store.get_store(bad)
        with pytest.raises(StoreNotFound):
            await store.write(bad, writes=[ANNE])


async def test_every_model_write_is_a_new_immutable_version(
    store: SqlAuthzStore, clock: FrozenClock
) -> None:
    s = await store.create_store("docs")
    with pytest.raises(LatestModelNotFound):
        await store.read_model(s.id)
    v1 = await store.write_model(s.id, MODEL)
    clock.advance(timedelta(seconds=1))
    changed = {**MODEL, "type_definitions": [*MODEL["type_definitions"], {"type": "folder"}]}
    v2 = await store.write_model(s.id, changed)
    assert v1.id != v2.id
    assert is_ulid(v2.id)
    assert (await store.read_model(s.id)).id == v2.id  # latest by default
    pinned = await store.read_model(s.id, v1.id)  # pinning a version
    assert pinned.model["type_definitions"] == MODEL["type_definitions"]
    listed = await store.list_models(s.id, page_size=1)
    assert [m.id for m in listed.items] == [v2.id]  # newest first
    rest = await store.list_models(s.id, page_size=1, token=listed.continuation_token)
    assert [m.id for m in rest.items] == [v1.id]
    with pytest.raises(ModelNotFound):
        await store.read_model(s.id, "01ARZ3NDEKTSV4RRFFQ69G5FAV")
    other = await store.create_store("other")
    with pytest.raises(ModelNotFound):  # a version of another store is not visible
        await store.read_model(other.id, v1.id)


async def test_write_read_and_conditions_round_trip(store: SqlAuthzStore) -> None:
    s = await store.create_store("docs")
    assert await store.write(s.id, writes=[ANNE, BOB, EXPIRING]) == 3
    page = await store.read(s.id, object="document:2")
    assert [p.tuple for p in page.items] == [EXPIRING]
    assert page.items[0].tuple.condition == "not_expired"
    assert dict(page.items[0].tuple.context or {}) == {"granted": "2026-01-01T00:00:00Z"}
    by_type = await store.read(s.id, object="document:", user="user:anne")
    assert {p.tuple.key for p in by_type.items} == {ANNE.key, EXPIRING.key}
    assert {p.tuple.key for p in (await store.read(s.id, relation="viewer")).items} == {
        ANNE.key,
        BOB.key,
        EXPIRING.key,
    }


async def test_read_pages_with_a_continuation_token(store: SqlAuthzStore) -> None:
    s = await store.create_store("docs")
    tuples = [Tuple(f"document:{i}", "viewer", "user:anne") for i in range(7)]
    await store.write(s.id, writes=tuples)
    seen, token = [], ""
    while True:
        page = await store.read(s.id, page_size=3, token=token)
        seen.extend(p.tuple for p in page.items)
        token = page.continuation_token
        if not token:
            break
    assert seen == tuples
    for bad in ("garbage", "eyJrIjoicmVhZCIsImlkIjoiMSJ9", "x" * 600):
        with pytest.raises(InvalidContinuationToken):
            await store.read(s.id, token=bad)


async def test_duplicate_write_and_missing_delete_follow_openfga(store: SqlAuthzStore) -> None:
    s = await store.create_store("docs")
    await store.write(s.id, writes=[ANNE])
    with pytest.raises(WriteConflict, match="cannot write a tuple which already exists"):
        await store.write(s.id, writes=[ANNE])
    assert await store.write(s.id, writes=[ANNE], on_duplicate=OnDuplicate.IGNORE) == 0
    with pytest.raises(WriteConflict, match="cannot delete a tuple which does not exist"):
        await store.write(s.id, deletes=[BOB])
    assert await store.write(s.id, deletes=[BOB], on_missing=OnMissing.IGNORE) == 0


async def test_ignored_duplicate_with_another_condition_is_still_a_conflict(
    store: SqlAuthzStore,
) -> None:
    s = await store.create_store("docs")
    await store.write(s.id, writes=[ANNE])
    conditional = Tuple(ANNE.object, ANNE.relation, ANNE.user, "not_expired", {"x": 1})
    with pytest.raises(WriteConflict):
        await store.write(s.id, writes=[conditional], on_duplicate=OnDuplicate.IGNORE)
    (stored,) = (await store.read(s.id)).items
    assert stored.tuple.condition is None


async def test_a_write_is_all_or_nothing(store: SqlAuthzStore, database: Database) -> None:
    s = await store.create_store("docs")
    await store.write(s.id, writes=[ANNE])
    fresh = Tuple("document:9", "viewer", "user:carl")
    with pytest.raises(WriteConflict):
        await store.write(s.id, writes=[fresh, ANNE], deletes=[Tuple(*EXPIRING.key)])
    with pytest.raises(WriteConflict):
        await store.write(s.id, writes=[fresh], deletes=[BOB])
    assert [p.tuple for p in (await store.read(s.id)).items] == [ANNE]
    async with database.engine.connect() as conn:
        changes = (await conn.execute(select(func.count()).select_from(authz_changes))).scalar()
    assert changes == 1  # the failed calls left no changelog entry either


async def test_write_input_limits(store: SqlAuthzStore) -> None:
    s = await store.create_store("docs")
    with pytest.raises(InvalidWriteInput):
        await store.write(s.id)
    with pytest.raises(DuplicateTupleInWrite):
        await store.write(s.id, writes=[ANNE], deletes=[ANNE])
    many = [Tuple(f"document:{i}", "viewer", "user:anne") for i in range(101)]
    with pytest.raises(ExceededEntityLimit):
        await store.write(s.id, writes=many)


async def test_changelog_is_ordered_paged_and_pollable(store: SqlAuthzStore) -> None:
    s = await store.create_store("docs")
    await store.write(s.id, writes=[ANNE, BOB])
    await store.write(s.id, deletes=[ANNE])
    await store.write(s.id, writes=[Tuple("folder:1", "viewer", "user:anne")])
    page = await store.read_changes(s.id, page_size=2)
    assert [(c.operation, c.tuple.key) for c in page.items] == [
        (Operation.WRITE, ANNE.key),
        (Operation.WRITE, BOB.key),
    ]
    rest = await store.read_changes(s.id, page_size=10, token=page.continuation_token)
    assert [(c.operation, c.tuple.object) for c in rest.items] == [
        (Operation.DELETE, "document:1"),
        (Operation.WRITE, "folder:1"),
    ]
    # Polling with the last token returns the same token until something happens.
    idle = await store.read_changes(s.id, token=rest.continuation_token)
    assert idle.items == ()
    assert idle.continuation_token == rest.continuation_token
    docs = await store.read_changes(s.id, object_type="document")
    assert {c.tuple.object_type for c in docs.items} == {"document"}
    with pytest.raises(InvalidContinuationToken):
        await store.read_changes(s.id, object_type="folder", token=docs.continuation_token)
    ids = [c.id for c in (await store.changes_after(s.id, 0))]
    assert ids == sorted(ids)
    assert len(ids) == 4
    assert await store.last_change_id(s.id) == ids[-1]


async def test_cascade_delete_of_an_object_and_of_a_user(
    store: SqlAuthzStore, database: Database
) -> None:
    s = await store.create_store("docs")
    group_member = Tuple("group:eng", "member", "user:anne")
    via_group = Tuple("document:3", "viewer", "group:eng#member")
    group_owner = Tuple("group:eng", "owner", "user:bob")
    # A look-alike whose id begins with the same characters must survive the cascade.
    lookalike = Tuple("document:4", "viewer", "group:eng_x#member")
    await store.write(s.id, writes=[ANNE, BOB, group_member, via_group, group_owner, lookalike])

    assert await store.delete_object(s.id, "group:eng") == 3
    remaining = {p.tuple.key for p in (await store.read(s.id)).items}
    assert remaining == {ANNE.key, BOB.key, lookalike.key}

    assert await store.delete_user(s.id, "user:anne") == 1
    remaining = {p.tuple.key for p in (await store.read(s.id)).items}
    assert remaining == {BOB.key, lookalike.key}
    deletes = [c for c in (await store.changes_after(s.id, 0)) if c.operation is Operation.DELETE]
    assert len(deletes) == 4  # every cascaded tuple is in the changelog


async def test_deleting_a_store_deletes_its_tuples_models_and_changes(
    store: SqlAuthzStore, database: Database
) -> None:
    s = await store.create_store("docs")
    other = await store.create_store("other")
    await store.write_model(s.id, MODEL)
    await store.write(s.id, writes=[ANNE])
    await store.write(other.id, writes=[ANNE])
    await store.delete_store(s.id)
    async with database.engine.connect() as conn:
        stores_of_tuples = (await conn.execute(select(authz_tuples.c.store_id))).scalars().all()
    assert stores_of_tuples == [other.id]
    with pytest.raises(StoreNotFound):
        await store.read_model(s.id)


async def test_stores_are_isolated(store: SqlAuthzStore) -> None:
    a = await store.create_store("a")
    b = await store.create_store("b")
    await store.write(a.id, writes=[ANNE])
    assert (await store.read(b.id)).items == ()
    assert await store.write(b.id, writes=[ANNE]) == 1  # not a duplicate in another store


async def test_concurrent_writers_of_one_store_keep_changelog_in_commit_order(
    store: SqlAuthzStore,
) -> None:
    s = await store.create_store("docs")
    writes = [Tuple(f"document:{i}", "viewer", "user:anne") for i in range(20)]
    await asyncio.gather(*(store.write(s.id, writes=[t]) for t in writes))
    tuples, position = await store.snapshot(s.id)
    assert len(tuples) == 20
    changes = await store.changes_after(s.id, 0)
    assert position == changes[-1].id
    assert [c.id for c in changes] == sorted(c.id for c in changes)


async def test_latest_model_id_names_the_newest_version(store: SqlAuthzStore) -> None:
    s = await store.create_store("docs")
    with pytest.raises(LatestModelNotFound):
        await store.latest_model_id(s.id)
    await store.write_model(s.id, MODEL)
    newest = await store.write_model(s.id, MODEL)
    assert await store.latest_model_id(s.id) == newest.id
    with pytest.raises(StoreNotFound):
        await store.latest_model_id("01ARZ3NDEKTSV4RRFFQ69G5FAV")


async def test_ensure_store_is_idempotent_and_reserved_ids_are_never_issued(
    store: SqlAuthzStore,
) -> None:
    reserved = "0000000000000000000SYSTEM0"
    first = await store.ensure_store(reserved, "bastion")
    again = await store.ensure_store(reserved, "other name")
    assert first == again
    assert is_reserved(reserved)
    assert not is_reserved((await store.create_store("docs")).id)
    with pytest.raises(ValueError, match="ULID"):
        await store.ensure_store("not-a-ulid", "x")
