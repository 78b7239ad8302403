"""Instructions per call of each piece of an audit event's cost, counted by callgrind.

:mod:`bench.audit.instructions` gives the whole cost of one event; this splits it: the event
built on the request path (``event_from_scope``, the bench's handler's call), the recorder's
``record()``, the ECS log line (``LogSink``'s members and line), and the database sink's work
per event (the row's parameters and canonical tail, the JSON column, the link's HMAC), and the
subscribers' ``StoredEvent``. The ``_shared`` pieces are the sinks' work on a recorder
:class:`~bastion.audit.recorder.Batch` (the database sink formats the UTC stamp and the
details' JSON text, the log sink reuses them). Each
piece runs ``--calls`` times in a loop (the loop's own overhead, about 100 instructions per
call, included) on the bench's event.

``--event decision`` runs them on a denied authorization check's event (the decision log's
details, subject and reason) instead of the bench handler's.

Usage: ``.venv/bin/python -m bench.audit.pieces [--calls 10000] [--event decision] [piece ...]``.
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import callgrind
from bench.audit.common import machine
from bench.http_overhead.inprocess import SCOPE

#: The scope the bench handler sees: the HTTP core has set the client IP and request id.
_SCOPE: dict[str, Any] = {
    **SCOPE,
    "path": "/bench-audit",
    "state": {"client_ip": "127.0.0.1", "request_id": "9f2c6d3e4b5a46f7a8b9c0d1e2f3a4b5"},
}


#: The event the pieces work on: ``profile`` (the bench handler's) or ``decision`` (a denied
#: authorization check as the decision log records it, see ``--event``).
EVENT = ["profile"]


#: The denied check the ``decision`` event records (the decision log's arguments).
_DECISION: dict[str, Any] = {
    "store_id": "01JDQ8ZK3V6Y2W9X4T5R7M8N0P",
    "model_id": "01JDQ8ZK4A1B2C3D4E5F6G7H8J",
    "object": "document:d12345",
    "relation": "viewer",
    "user": "user:u6789",
    "latency_ms": 0.123456,
    "reason": "no_relationship",
    "scope": _SCOPE,
    "actor": "user:01JDQ8ZK5K6M7N8P9Q0R1S2T3V",
}


def _decision_event() -> Any:
    from bastion.audit.capture import event_of  # noqa: PLC0415
    from bastion.audit.recorder import QueueAuditRecorder  # noqa: PLC0415
    from bastion.authz.service._decisions import DecisionLog  # noqa: PLC0415
    from bastion.clock import SystemClock  # noqa: PLC0415

    recorder = QueueAuditRecorder([], queue_size=10, batch_size=1)
    log = DecisionLog(recorder, SystemClock(), sample_rate=1.0)
    log.log(False, **_DECISION)
    queued = recorder._queue.get_nowait()  # noqa: SLF001 - the event as it was queued
    return event_of(queued) if type(queued) is tuple else queued


def _event() -> Any:
    from bastion.audit.context import event_from_scope  # noqa: PLC0415
    from bastion.audit.events import EventType, Outcome  # noqa: PLC0415

    if EVENT[0] == "decision":
        return _decision_event()
    return event_from_scope(
        _SCOPE,
        EventType.IDENTITY_PROFILE_UPDATED,
        Outcome.SUCCESS,
        actor="user:bench",
        subject="user:bench",
        details={"fields": ["display_name"]},
    )


def _from_scope() -> Callable[[], Any]:
    from bastion.audit.context import event_from_scope  # noqa: PLC0415
    from bastion.audit.events import EventType, Outcome  # noqa: PLC0415

    kind, outcome = EventType.IDENTITY_PROFILE_UPDATED, Outcome.SUCCESS
    return lambda: event_from_scope(
        _SCOPE,
        kind,
        outcome,
        actor="user:bench",
        subject="user:bench",
        details={"fields": ["display_name"]},
    )


def _decision_log() -> Callable[[], Any]:
    """A denied check's event built by the decision log (details, subject, ``event_from_scope``)
    and queued (a recorder whose queue is drained by the loop, not counted apart)."""
    from bastion.audit.recorder import QueueAuditRecorder  # noqa: PLC0415
    from bastion.authz.service._decisions import DecisionLog  # noqa: PLC0415
    from bastion.clock import SystemClock  # noqa: PLC0415

    recorder = QueueAuditRecorder([], queue_size=10**7, batch_size=200)
    log = DecisionLog(recorder, SystemClock(), sample_rate=1.0).log
    queue = recorder._queue  # noqa: SLF001

    def decide() -> Any:
        log(False, **_DECISION)
        return queue.get_nowait()

    return decide


def _record() -> Callable[[], Any]:
    from bastion.audit.recorder import QueueAuditRecorder  # noqa: PLC0415

    recorder = QueueAuditRecorder([], queue_size=10**7, batch_size=200)
    event = _event()
    return lambda: recorder.record(event)


def _ecs_line() -> Callable[[], Any]:
    from bastion.audit import ecs  # noqa: PLC0415
    from bastion.audit.sinks import _log  # noqa: PLC0415

    event = _event()
    head = _log._LINE_HEAD  # noqa: SLF001 - the sink's own line
    tail = ', "level": "info", "message": "audit_event"}'
    return lambda: "{" + head + ecs.ecs_members(event) + tail


def _ecs_line_shared() -> Callable[[], Any]:
    from bastion.audit.recorder import Batch  # noqa: PLC0415
    from bastion.audit.sinks import _log, _rows  # noqa: PLC0415

    event = _event()
    batch = Batch([event])  # the database sink wrote first: the stamp and JSON text are shared
    _rows._link(_rows._insert_for(_sqlite_dialect()), event, batch, 0)  # noqa: SLF001
    head = _log._LINE_HEAD  # noqa: SLF001 - the sink's own line
    tail = ', "level": "info", "message": "audit_event"}'
    return lambda: "{" + head + _log._ecs_members(event, batch, 0) + tail  # noqa: SLF001


def _stored() -> Callable[[], Any]:
    from bastion.audit.interfaces import StoredEvent  # noqa: PLC0415

    event = _event()
    return lambda: StoredEvent(123456, event)


def _sqlite_dialect() -> Any:
    from sqlalchemy.ext.asyncio import create_async_engine  # noqa: PLC0415

    import bastion.storage  # noqa: F401, PLC0415 - registers sqlite+inline

    return create_async_engine("sqlite+inline://").dialect


def _row() -> Callable[[], Any]:
    from bastion.audit.sinks import _rows  # noqa: PLC0415

    insert_ = _rows._insert_for(_sqlite_dialect())  # noqa: SLF001
    event = _event()
    return lambda: _rows._link(insert_, event)  # noqa: SLF001


def _row_shared() -> Callable[[], Any]:
    from bastion.audit.recorder import Batch  # noqa: PLC0415
    from bastion.audit.sinks import _rows  # noqa: PLC0415

    insert_ = _rows._insert_for(_sqlite_dialect())  # noqa: SLF001
    event = _event()
    batch = Batch([event])

    def link() -> Any:
        # The database sink first (as the recorder's sinks are ordered): it fills the batch.
        batch.stamps[0] = batch.details_json[0] = None
        return _rows._link(insert_, event, batch, 0)  # noqa: SLF001

    return link


def _canonical_tail() -> Callable[[], Any]:
    from bastion.audit import chain  # noqa: PLC0415
    from bastion.audit.sinks import _rows  # noqa: PLC0415

    event = _event()
    texts = _rows._texts(event)  # noqa: SLF001
    stamp = chain.utc_stamp(event.time)
    return lambda: chain.canonical_tail(stamp, texts, event.details)


def _json_column() -> Callable[[], Any]:
    from bastion.audit.sinks import _rows  # noqa: PLC0415

    insert_ = _rows._insert_for(_sqlite_dialect())  # noqa: SLF001
    details = _event().details
    process = insert_._details  # noqa: SLF001
    return lambda: process(details)


def _mac() -> Callable[[], Any]:
    from bastion.audit import chain  # noqa: PLC0415
    from bastion.audit.sinks import _rows  # noqa: PLC0415

    event = _event()
    tail = chain.canonical_tail(chain.utc_stamp(event.time), _rows._texts(event), event.details)  # noqa: SLF001
    key = chain.ChainKey("0a1b2c3d", b"k" * 32)
    return lambda: chain.link_mac(key, 123456, "f" * 64, tail)


def _mac_message() -> tuple[Any, bytes]:
    from bastion.audit import chain  # noqa: PLC0415
    from bastion.audit.sinks import _rows  # noqa: PLC0415

    event = _event()
    tail = chain.canonical_tail(chain.utc_stamp(event.time), _rows._texts(event), event.details)  # noqa: SLF001
    key = chain.ChainKey("0a1b2c3d", b"k" * 32)
    return key, chain._linked(123456, key.key_id, "f" * 64, tail)  # noqa: SLF001


def _mac_key() -> Callable[[], Any]:
    key, message = _mac_message()
    return lambda: key.mac(message)


def _mac_stdlib() -> Callable[[], Any]:
    import hmac  # noqa: PLC0415

    key, message = _mac_message()
    secret = key.key
    return lambda: hmac.digest(secret, message, "sha256").hex()


def _mac_copy() -> Callable[[], Any]:
    import hmac  # noqa: PLC0415

    key, message = _mac_message()
    keyed = hmac.new(key.key, digestmod="sha256")

    def mac() -> str:
        h = keyed.copy()
        h.update(message)
        return h.hexdigest()

    return mac


def _mac_cryptography() -> Callable[[], Any]:
    from cryptography.hazmat.primitives import hashes  # noqa: PLC0415
    from cryptography.hazmat.primitives.hmac import HMAC  # noqa: PLC0415

    key, message = _mac_message()
    keyed = HMAC(key.key, hashes.SHA256())

    def mac() -> str:
        h = keyed.copy()
        h.update(message)
        return h.finalize().hex()

    return mac


def _mac_openssl() -> Callable[[], Any]:
    import _hashlib  # noqa: PLC0415

    key, message = _mac_message()
    keyed = _hashlib.hmac_new(key.key, digestmod="sha256")

    def mac() -> str:
        h = keyed.copy()
        h.update(message)
        return str(h.hexdigest())

    return mac


def _now() -> Callable[[], Any]:
    return lambda: datetime.now(UTC)


PIECES: dict[str, Callable[[], Callable[[], Any]]] = {
    "from_scope": _from_scope,
    "record": _record,
    "decision_log": _decision_log,
    "ecs_line": _ecs_line,
    "ecs_line_shared": _ecs_line_shared,
    "row": _row,
    "row_shared": _row_shared,
    "canonical_tail": _canonical_tail,
    "json_column": _json_column,
    "mac": _mac,
    "mac_key": _mac_key,
    "mac_stdlib": _mac_stdlib,
    "mac_copy": _mac_copy,
    "mac_cryptography": _mac_cryptography,
    "mac_openssl": _mac_openssl,
    "now": _now,
    "stored": _stored,
}


def _drive(piece: str, n: int, flags: Path) -> None:
    call = PIECES[piece]()
    for _ in range(1000):  # warm: caches, specialization
        call()
    callgrind.ready(flags)
    for _ in range(n):
        call()
    callgrind.done(flags)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument(
        "--event",
        choices=("profile", "decision"),
        default="profile",
        help="the bench handler's event, or a denied authorization decision's",
    )
    parser.add_argument("--drive", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("pieces", nargs="*", default=list(PIECES))
    args = parser.parse_args()
    EVENT[0] = args.event
    if args.drive:
        piece, n, flags = args.drive
        _drive(piece, int(n), Path(flags))
        return
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is missing: apt-get install -y valgrind")
    print(f"run: {machine()}")
    print(f"instructions per call ({args.calls} calls, loop overhead included)")
    for piece in args.pieces:
        extra = ["--event", args.event]
        count = callgrind.count("bench.audit.pieces", [piece], args.calls, extra=extra, label=piece)
        print(f"  {piece:15} {count:10,.0f}")


if __name__ == "__main__":
    main()
