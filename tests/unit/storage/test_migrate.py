"""Migrations: packaged scripts, upgrade to head, revision queries, and model/migration parity."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, column, insert, inspect, select, table

from bastion.identity.accounts.users import insert_user
from bastion.identity.sessions.models import refresh_tokens, sessions
from bastion.storage import Database, MigrationError, StorageUnavailable, migrate
from bastion.storage.schema import MODEL_MODULES, load_metadata

EXPECTED_TABLES = {"alembic_version", "audit_events", "setup_tokens"}


def test_scripts_ship_inside_the_package() -> None:
    assert (migrate.MIGRATIONS_DIR / "env.py").is_file()
    assert (migrate.MIGRATIONS_DIR / "script.py.mako").is_file()
    script = ScriptDirectory.from_config(migrate.alembic_config())
    assert [rev.revision for rev in script.walk_revisions()][-1] == "0001"
    assert migrate.head_revision() == script.get_current_head()


def test_every_model_module_is_loaded() -> None:
    tables = set(load_metadata().tables)
    assert {"audit_events", "setup_tokens"} <= tables
    assert len(MODEL_MODULES) == len(set(MODEL_MODULES))


async def test_upgrade_creates_the_schema(database_url: str) -> None:
    assert await migrate.current_revision(database_url) is None
    assert not await migrate.is_up_to_date(database_url)
    await migrate.upgrade(database_url)
    assert await migrate.current_revision(database_url) == migrate.head_revision()
    assert await migrate.is_up_to_date(database_url)
    db = Database(database_url)
    try:
        async with db.engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
            indexes = await conn.run_sync(
                lambda c: {ix["name"] for ix in inspect(c).get_indexes("audit_events")}
            )
    finally:
        await db.dispose()
    assert tables >= EXPECTED_TABLES
    assert indexes >= {
        "ix_audit_events_time",
        "ix_audit_events_type_time",
        "ix_audit_events_actor_time",
        "ix_audit_events_subject_time",
        "ix_audit_events_request_id",
        "ix_audit_events_client_ip_time",
    }


async def test_upgrade_twice_is_a_no_op(database_url: str) -> None:
    await migrate.upgrade(database_url)
    await migrate.upgrade(database_url)
    assert await migrate.is_up_to_date(database_url)


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, load_metadata()))


async def test_migrations_match_the_models(database_url: str) -> None:
    # A model changed without a migration (or the reverse) shows up here as a diff.
    await migrate.upgrade(database_url)
    db = Database(database_url)
    try:
        async with db.engine.connect() as conn:
            diff = await conn.run_sync(_diff)
    finally:
        await db.dispose()
    assert diff == []


async def test_downgrade_to_base_and_back(database_url: str) -> None:
    await migrate.upgrade(database_url)
    db = Database(database_url)

    def downgrade(connection: Connection) -> None:
        config = migrate.alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "base")

    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(downgrade)
        async with db.engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await db.dispose()
    assert tables <= {"alembic_version"}
    await migrate.upgrade(database_url)
    assert await migrate.is_up_to_date(database_url)


async def test_unknown_revision_is_a_migration_error(tmp_path: Path) -> None:
    with pytest.raises(MigrationError) as caught:
        await migrate.upgrade(f"sqlite:///{tmp_path / 'm.db'}", "no-such-revision")
    assert caught.value.code == "storage_migration_failed"


async def test_unreachable_database_is_storage_unavailable() -> None:
    with pytest.raises(StorageUnavailable):
        await migrate.upgrade("postgresql://postgres@127.0.0.1:1/none")
    with pytest.raises(StorageUnavailable):
        await migrate.current_revision("postgresql://postgres@127.0.0.1:1/none")


@pytest.mark.timing
def test_sync_helper_migrates(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    started = time.perf_counter()
    migrate.upgrade_sync(url)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, f"migrating an empty SQLite database took {elapsed:.2f}s"


async def test_0014_moves_each_sealed_successor_into_its_own_row_and_back(
    database_url: str,
) -> None:
    """A chain t1 -> t2 -> t3 (t1 and t2 used, t3 live) in the old layout: t2's row holds t3
    sealed. After 0014, t3 holds its own sealed copy and t2 names it; the downgrade puts it
    back. (So a retry within the grace across the upgrade gets the same successor.)"""
    script = ScriptDirectory.from_config(migrate.alembic_config()).get_revision("0014")
    assert script is not None
    before = str(script.down_revision)  # the revision 0014 follows
    await migrate.upgrade(database_url, before)
    now = datetime.now(UTC)
    model = refresh_tokens.c
    old = table(
        "refresh_tokens",
        *(column(c.name, c.type) for c in model if c.name not in {"id", "successor_hash"}),
    )
    new = table("refresh_tokens", *(column(c.name, c.type) for c in model))
    db = Database(database_url)

    async def layout(*names: str) -> dict[str, tuple[object, ...]]:
        async with db.engine.connect() as conn:
            rows = await conn.execute(select(new.c.token_hash, *(new.c[n] for n in names)))
            return {row[0]: tuple(row[1:]) for row in rows}

    def downgrade(connection: Connection) -> None:
        config = migrate.alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, before)

    try:
        async with db.engine.begin() as conn:
            user = await insert_user(
                conn,
                email="m@example.org",
                email_normalized="m@example.org",
                display_name="M",
                password_hash=None,
                now=now,
            )
            await conn.execute(
                insert(sessions).values(
                    id="s1",
                    user_id=user.id,
                    created_at=now,
                    last_seen_at=now,
                    absolute_expires_at=now,
                    amr=[],
                    acr="aal1",
                    transport="bearer",
                )
            )
            for token, parent, used, sealed in (
                ("t1", None, now, None),
                ("t2", "t1", now, "sealed-t3"),
                ("t3", "t2", None, None),
            ):
                await conn.execute(
                    insert(old).values(
                        token_hash=token,
                        session_id="s1",
                        parent_hash=parent,
                        created_at=now,
                        used_at=used,
                        successor_sealed=sealed,
                    )
                )
        await migrate.upgrade(database_url)
        assert await layout("successor_sealed", "successor_hash") == {
            "t1": (None, None),
            "t2": (None, "t3"),
            "t3": ("sealed-t3", None),
        }
        async with db.engine.begin() as conn:
            await conn.run_sync(downgrade)
        async with db.engine.connect() as conn:
            columns = await conn.run_sync(
                lambda c: {col["name"] for col in inspect(c).get_columns("refresh_tokens")}
            )
            indexes = await conn.run_sync(
                lambda c: {ix["name"] for ix in inspect(c).get_indexes("refresh_tokens")}
            )
        assert "successor_hash" not in columns
        assert "ix_refresh_tokens_session_id" in indexes
        assert not any("parent_hash" in name for name in indexes)  # 0014's temporary one
        assert await layout("successor_sealed") == {
            "t1": (None,),
            "t2": ("sealed-t3",),
            "t3": (None,),
        }
    finally:
        await db.dispose()
