"""Recording events end to end gives exactly what ``main`` at ``453fea4`` gave: the stored rows
(every column, the chain's MACs) and the ECS log lines, byte for byte, for events whose details
exercise every branch of the scrubbing (redaction, truncation, depth, text cleaning, kinds).

``data/record_golden.json`` was written by this module run against that commit's code
(``BASTION_WRITE_GOLDEN=<path>``); the request path's shortcuts must not change a byte.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import text

from bastion import logging as bastion_logging
from bastion.audit.chain import ChainKeys
from bastion.audit.context import event_from_scope, record_from_scope
from bastion.audit.events import EventType, Outcome
from bastion.audit.recorder import QueueAuditRecorder
from bastion.audit.sinks import DatabaseSink, LogSink
from bastion.clock import FrozenClock
from bastion.crypto import Keyring
from bastion.storage import Database

GOLDEN = Path(__file__).parent / "data" / "record_golden.json"
KEYS = ChainKeys.from_keyring(Keyring(b"g" * 32))
T0 = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
HEADERS = [(b"host", b"example.test"), (b"User-Agent", b"x"), (b"user-agent", b"curl/8.1")]


def _scope(n: int) -> dict[str, Any]:
    cases: list[dict[str, Any]] = [
        {"state": {"client_ip": "203.0.113.9", "request_id": "r-1"}, "headers": HEADERS},
        {"state": {}, "client": ("198.51.100.2", 5), "headers": []},
        {"state": {"request_id": "x" * 300}, "headers": [(b"user-agent", b"u" * 900)]},
        {"headers": [(b"user-agent", "\u00e9\u00ff".encode("latin-1"))]},
        {"state": {"client_ip": "", "request_id": ""}, "client": None, "headers": None},
        {"state": {"client_ip": 12345, "request_id": 678}},
    ]
    return {"type": "http", **cases[n % len(cases)]}


class _Thing:
    def __str__(self) -> str:
        return "thing\x00\ud800"


def _details() -> list[Any]:
    deep: dict[str, Any] = {"leaf": 1}
    for level in range(10):
        deep = {f"l{level}": deep, "list": [[[["x"]]]]}
    return [
        None,
        {},
        {"fields": ["display_name"]},
        {"password": "hunter2", "new_password": ["a"], "Token": {"x": 1}, "ok": "fine"},
        {"n": 1, "f": 2.0, "g": 2.5, "nan": float("nan"), "inf": float("inf"), "b": True},
        {"s": "a" * 2000, "u": "\u00fcn\u00ef\n", "nul": "a\x00b", "sur": "\ud800x"},
        {1: "int key", ("t", 1): "tuple key", "k" * 1500: "long key", "k\x00": "nul key"},
        {"t": (1, "2"), "set": {3}, "fs": frozenset({4}), "l": [1, [2, [3.0]]]},
        {"when": T0, "day": date(2026, 1, 2), "id": uuid.UUID(int=7), "obj": _Thing()},
        deep,
        {"nested": {"secret_key": "s", "inner": {"api_key": "k", "v": [None, False]}}},
        {"big": 10**20, "neg": -3, "zero": 0.0, "e16": 1e16},
    ]


async def _record(database: Database, *, captured: bool = False) -> dict[str, Any]:
    out = io.StringIO()
    bastion_logging.configure("info", json=True, stream=out)
    clock = FrozenClock(T0)
    recorder = QueueAuditRecorder(
        [DatabaseSink(database, KEYS), LogSink()], queue_size=100, batch_size=7, flush_delay=0
    )
    try:
        for n, details in enumerate(_details()):
            caller = dict(details) if isinstance(details, dict) else details
            fields: dict[str, Any] = {
                "actor": None if n % 4 == 0 else f"user:{n}",
                "subject": None if n % 3 == 0 else f"subject:{n}\u00e9",
                "reason": None if n % 2 else f"reason-{n}",
                "details": caller,
                "clock": clock,
            }
            kind, outcome = list(EventType)[n * 7 % len(EventType)], list(Outcome)[n % 3]
            if captured:  # the request path's capture, built by the writer
                record_from_scope(recorder, _scope(n), kind, outcome, **fields)
            else:
                recorder.record(event_from_scope(_scope(n), kind, outcome, **fields))
            clock._now += timedelta(microseconds=n * 1001)
        await recorder.start()
        await recorder.aclose()
    finally:
        structlog.reset_defaults()
    assert recorder.written_total == len(_details())
    async with database.session() as session:
        result = await session.execute(
            text(
                "SELECT time, type, outcome, actor, subject, client_ip, user_agent, request_id, "
                "reason, details, seq, mac, key_id FROM audit_events ORDER BY seq"
            )
        )
        rows = [
            {
                key: value if isinstance(value, str | int | None) else repr(value)
                for key, value in row.items()
            }
            for row in result.mappings()
        ]
    return {"rows": rows, "lines": out.getvalue().splitlines()}


def _write_golden(target: str, dialect: str, got: dict[str, Any]) -> None:
    path = Path(target)
    stored = json.loads(path.read_text()) if path.exists() else {}
    stored[dialect] = got
    path.write_text(json.dumps(stored, indent=1, sort_keys=True, ensure_ascii=True) + "\n")


def _golden(dialect: str) -> dict[str, Any]:
    return json.loads(GOLDEN.read_text())[dialect]  # type: ignore[no-any-return]


async def test_recorded_rows_and_lines_are_mains_byte_for_byte(database: Database) -> None:
    got = await _record(database)
    dialect = database.engine.dialect.name
    target = os.environ.get("BASTION_WRITE_GOLDEN")
    if target:  # pragma: no cover - how the golden file was made (against main's code)
        _write_golden(target, dialect, got)
        return
    want = _golden(dialect)
    assert got["lines"] == want["lines"]
    assert got["rows"] == want["rows"]


async def test_captured_events_store_mains_rows_and_lines_byte_for_byte(database: Database) -> None:
    # record_from_scope (what the handlers call): the same rows, MACs and lines.
    got = await _record(database, captured=True)
    want = _golden(database.engine.dialect.name)
    assert got["lines"] == want["lines"]
    assert got["rows"] == want["rows"]
