"""Configuration changes: keyed digests per setting, compared at each start (SQLite and
PostgreSQL), recording names and never values."""

from __future__ import annotations

import asyncio
import json

from pydantic import SecretStr

from bastion.audit.events import AuditEvent, EventType
from bastion.clock import FrozenClock
from bastion.config.settings import Settings
from bastion.crypto import Keyring
from bastion.privacy.settings_changes import SettingsChanges, diff, digests_of
from bastion.storage import Database

KEY = b"k" * 32
OTHER_KEY = b"o" * 32
SMTP_PASSWORD = "smtp-password-never-recorded"


class ListRecorder:
    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def record(self, event: AuditEvent) -> None:
        self.events.append(event)

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


def _changes(settings: Settings, database: Database, recorder: ListRecorder) -> SettingsChanges:
    assert settings.secret_key is not None
    return SettingsChanges(
        settings,
        database=database,
        audit=recorder,
        clock=FrozenClock(),
        keyring=Keyring(settings.secret_key),
    )


def test_one_digest_per_setting_nested_names_dotted(settings: Settings) -> None:
    digests = digests_of(settings, KEY)
    assert {"port", "secret_key", "smtp_password", "ratelimit.storage"} <= set(digests)
    assert all(len(d) == 64 for d in digests.values())
    assert digests_of(settings, KEY) == digests


def test_only_the_changed_setting_differs(settings: Settings) -> None:
    before = digests_of(settings, KEY)
    after = digests_of(settings.model_copy(update={"port": 9000}), KEY)
    assert diff(before, after) == ["port"]


def test_setting_a_secret_shows_but_its_value_does_not(settings: Settings) -> None:
    before = digests_of(settings, KEY)
    changed = settings.model_copy(update={"smtp_password": SecretStr(SMTP_PASSWORD)})
    after = digests_of(changed, KEY)
    assert diff(before, after) == ["smtp_password"]
    assert SMTP_PASSWORD not in json.dumps(after)


def test_digests_are_keyed(settings: Settings) -> None:
    # Without the key a digest cannot be checked against a guessed value.
    assert digests_of(settings, KEY)["port"] != digests_of(settings, OTHER_KEY)["port"]


async def test_first_start_records_the_baseline_then_nothing(
    settings: Settings, database: Database
) -> None:
    recorder = ListRecorder()
    assert await _changes(settings, database, recorder).check() == []
    [event] = recorder.events
    assert event.type is EventType.CONFIG_SETTINGS_CHANGED
    assert event.details["first_start"] is True
    assert await _changes(settings, database, recorder).check() is None
    assert len(recorder.events) == 1


async def test_a_changed_start_names_the_settings_only(
    settings: Settings, database: Database
) -> None:
    recorder = ListRecorder()
    await _changes(settings, database, recorder).check()
    changed = settings.model_copy(update={"port": 9000, "smtp_password": SecretStr(SMTP_PASSWORD)})
    assert await _changes(changed, database, recorder).check() == ["port", "smtp_password"]
    event = recorder.events[-1]
    assert event.details["changed"] == ["port", "smtp_password"]
    assert event.details["first_start"] is False
    assert SMTP_PASSWORD not in repr(event)
    async with database.engine.connect() as connection:
        stored = (await connection.exec_driver_sql("SELECT digests FROM config_fingerprints")).all()
    assert len(stored) == 2
    assert all(SMTP_PASSWORD not in row[0] for row in stored)


async def test_a_new_secret_key_is_reported_alone(settings: Settings, database: Database) -> None:
    recorder = ListRecorder()
    await _changes(settings, database, recorder).check()
    rekeyed = settings.model_copy(update={"secret_key": SecretStr("y" * 48), "port": 9000})
    assert await _changes(rekeyed, database, recorder).check() == ["secret_key"]
    assert recorder.events[-1].details["rekeyed"] is True


async def test_workers_starting_together_record_a_change_once(
    settings: Settings, database: Database
) -> None:
    # Each worker has its own engine (its own connections), as separate processes do.
    recorder = ListRecorder()
    await _changes(settings, database, recorder).check()
    changed = settings.model_copy(update={"port": 9000})
    workers = [Database(database.url) for _ in range(4)]
    try:
        results = await asyncio.gather(
            *(_changes(changed, worker, recorder).check() for worker in workers)
        )
    finally:
        for worker in workers:
            await worker.dispose()
    assert results.count(None) == 3
    assert ["port"] in results
    assert [e.details["changed"] for e in recorder.events] == [[], ["port"]]
    async with database.engine.connect() as connection:
        stored = (await connection.exec_driver_sql("SELECT id FROM config_fingerprints")).all()
    assert len(stored) == 2
