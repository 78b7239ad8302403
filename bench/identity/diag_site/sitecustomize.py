"""Diagnostics for a served worker, for :mod:`bench.identity.served_cpu` only (never for a
figure of record): put this directory on ``PYTHONPATH`` and set

* ``BENCH_DIAG_STATS=<file>``: count the garbage collector's runs per generation and the CPU
  time they take (``gc.callbacks``, thread CPU time); ``SIGUSR1`` writes the counts to
  ``<file>`` as JSON, with the units of work that ran on a pooled connection (the kept one
  busy);
* ``BENCH_DIAG_AUDIT=off``: audit events are not queued (diagnosis of their cost only);
* ``BENCH_DIAG_CHECKPOINT_UNITS=<n>``: the WAL checkpointer's ``units``.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import time
from typing import Any

#: Units of work run on a pooled connection (the kept one was busy), by kind; and
#: ``try_unit`` calls, those that did not run (None: the caller's ordinary path followed),
#: ordinary ``Database.transaction`` calls, WAL checkpoints (with the seconds from their wait
#: for the write gate to its release, and the WAL frames they found and copied).
POOLED = {
    "transaction": 0,
    "read": 0,
    "try_unit": 0,
    "try_unit_none": 0,
    "db_transaction": 0,
    "checkpoints": 0,
    "gate_seconds": 0.0,
    "wal_frames": 0,
    "frames_copied": 0,
}


def _count_pooled() -> None:
    from bastion.storage import database  # noqa: PLC0415

    for kind, name in (("transaction", "_in_transaction"), ("read", "_on_connection")):
        original = getattr(database, name)

        def counted(*args: Any, _kind: str = kind, _original: Any = original) -> Any:
            POOLED[_kind] += 1
            return _original(*args)

        setattr(database, name, counted)

    try_unit = database.Database.try_unit
    transaction = database.Database.transaction

    def counted_try(self: Any, work: Any) -> Any:
        POOLED["try_unit"] += 1
        result = try_unit(self, work)
        if result is None:
            POOLED["try_unit_none"] += 1
        return result

    async def counted_transaction(self: Any, work: Any) -> Any:
        POOLED["db_transaction"] += 1
        return await transaction(self, work)

    database.Database.try_unit = counted_try  # type: ignore[method-assign]
    database.Database.transaction = counted_transaction  # type: ignore[method-assign]
    _count_checkpoints()


def _count_checkpoints() -> None:
    from bastion.storage import wal  # noqa: PLC0415

    holding = wal.WalCheckpointer._checkpoint_holding_gate  # noqa: SLF001 - a diagnostic
    collect = wal.WalCheckpointer._collect  # noqa: SLF001

    async def timed(self: Any, gate: Any) -> Any:
        started = time.perf_counter()
        try:
            return await holding(self, gate)
        finally:
            POOLED["gate_seconds"] += time.perf_counter() - started

    async def counted(self: Any, work: Any, **kwargs: Any) -> None:
        runs = self.runs
        await collect(self, work, **kwargs)
        if self.runs == runs:
            return  # a pass that is not the checkpoint's last (or failed)
        POOLED["checkpoints"] += 1
        if self.last is not None:
            POOLED["wal_frames"] += self.last[1]
            POOLED["frames_copied"] += self.last[2]

    wal.WalCheckpointer._checkpoint_holding_gate = timed  # type: ignore[method-assign] # noqa: SLF001
    wal.WalCheckpointer._collect = counted  # type: ignore[method-assign] # noqa: SLF001


def _gc_stats(path: str) -> None:
    counts = [0, 0, 0]
    seconds = [0.0, 0.0, 0.0]
    collected = [0, 0, 0]
    started = [0.0]

    def callback(phase: str, info: dict[str, Any]) -> None:
        generation = info["generation"]
        if phase == "start":
            started[0] = time.thread_time()
            return
        counts[generation] += 1
        collected[generation] += info["collected"]
        seconds[generation] += time.thread_time() - started[0]

    def dump(*_: object) -> None:
        figures = {"collections": counts, "cpu_seconds": seconds, "collected": collected}
        figures["threshold"] = list(gc.get_threshold())
        figures["frozen"] = gc.get_freeze_count()
        figures["tracked"] = [len(gc.get_objects(g)) for g in range(3)]
        figures["pooled"] = dict(POOLED)
        with open(path, "w") as out:  # noqa: PTH123 - a diagnostic, kept dependency-free
            json.dump(figures, out)

    gc.callbacks.append(callback)
    signal.signal(signal.SIGUSR1, dump)


def _no_audit() -> None:
    from bastion.audit import recorder  # noqa: PLC0415

    def dropped(_recorder: object, _event: object) -> None:
        return None

    recorder.QueueAuditRecorder.record = dropped  # type: ignore[method-assign,assignment]
    recorder.QueueAuditRecorder.record_captured = dropped  # type: ignore[method-assign,assignment]


def _checkpoint_units(units: int) -> None:
    from bastion.storage import wal  # noqa: PLC0415

    init = wal.WalCheckpointer.__init__
    init.__kwdefaults__ = {**(init.__kwdefaults__ or {}), "units": units}


if os.environ.get("BENCH_DIAG_STATS"):
    _gc_stats(os.environ["BENCH_DIAG_STATS"])
    _count_pooled()
if os.environ.get("BENCH_DIAG_AUDIT") == "off":
    _no_audit()
if os.environ.get("BENCH_DIAG_CHECKPOINT_UNITS"):
    _checkpoint_units(int(os.environ["BENCH_DIAG_CHECKPOINT_UNITS"]))
