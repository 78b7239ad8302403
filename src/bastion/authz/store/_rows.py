"""Conversions between the store's rows and its records, and the write rules applied to them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, tuple_
from sqlalchemy.engine import RowMapping

from bastion.authz.errors import WriteConflict
from bastion.authz.store.models import OP_DELETE, OP_WRITE, authz_tuples
from bastion.authz.store.records import (
    Change,
    ModelRecord,
    OnDuplicate,
    OnMissing,
    Operation,
    StoreRecord,
)
from bastion.authz.tuples import Tuple

__all__ = [
    "absent",
    "change_of",
    "change_row",
    "keys_in",
    "model_of",
    "present",
    "store_of",
    "tuple_of",
    "tuple_row",
    "userset_of",
]

_OPERATIONS = {OP_WRITE: Operation.WRITE, OP_DELETE: Operation.DELETE}


def tuple_of(m: RowMapping) -> Tuple:
    return Tuple(m["object"], m["relation"], m["user"], m["condition_name"], m["condition_context"])


def store_of(m: RowMapping) -> StoreRecord:
    return StoreRecord(m["id"], m["name"], m["created_at"], m["updated_at"])


def model_of(m: RowMapping) -> ModelRecord:
    return ModelRecord(m["id"], m["store_id"], m["schema_version"], m["model"], m["created_at"])


def change_of(m: RowMapping) -> Change:
    return Change(m["id"], _OPERATIONS[m["operation"]], tuple_of(m), m["created_at"])


def userset_of(entity: str) -> ColumnElement[bool]:
    """Users that are usersets of ``entity`` (``entity#anything``); ``%`` and ``_`` in the
    entity are escaped, so they match literally."""
    return authz_tuples.c.user.startswith(f"{entity}#", autoescape=True)


def change_row(store_id: str, op: int, t: Tuple, now: datetime) -> dict[str, Any]:
    return {
        "store_id": store_id,
        "operation": op,
        "object_type": t.object_type,
        "object": t.object,
        "relation": t.relation,
        "user": t.user,
        "condition_name": t.condition,
        "condition_context": dict(t.context) if t.context is not None else None,
        "created_at": now,
    }


def keys_in(store_id: str, keys: Sequence[tuple[str, str, str]]) -> ColumnElement[bool]:
    c = authz_tuples.c
    return and_(c.store_id == store_id, tuple_(c.object, c.relation, c.user).in_(keys))


def tuple_row(store_id: str, t: Tuple, now: datetime) -> dict[str, Any]:
    return {
        "store_id": store_id,
        "object_type": t.object_type,
        "object": t.object,
        "relation": t.relation,
        "user": t.user,
        "condition_name": t.condition,
        "condition_context": dict(t.context) if t.context is not None else None,
        "created_at": now,
    }


def present(
    deletes: Sequence[Tuple],
    existing: Mapping[tuple[str, str, str], Any],
    on_missing: OnMissing,
) -> list[Tuple]:
    """The deletes to apply. Raises WriteConflict for a missing tuple unless ignored."""
    found = []
    for t in deletes:
        if t.key in existing:
            found.append(t)
        elif on_missing is not OnMissing.IGNORE:
            raise WriteConflict(
                f"cannot delete a tuple which does not exist: user: '{t.user}', relation: "
                f"'{t.relation}', object: '{t.object}': invalid write input"
            )
    return found


def absent(
    writes: Sequence[Tuple],
    existing: Mapping[tuple[str, str, str], tuple[str | None, Any]],
    on_duplicate: OnDuplicate,
) -> list[Tuple]:
    """The writes to apply. Raises WriteConflict for an existing tuple, unless ignored and
    the same grant: OpenFGA refuses an ignored duplicate with another condition, never
    silently keeping the old one."""
    new = []
    for t in writes:
        stored = existing.get(t.key)
        if stored is None:
            new.append(t)
            continue
        same = stored[0] == t.condition and (stored[1] or {}) == (dict(t.context or {}))
        if not (same and on_duplicate is OnDuplicate.IGNORE):
            raise WriteConflict(
                f"cannot write a tuple which already exists: user: '{t.user}', relation: "
                f"'{t.relation}', object: '{t.object}': invalid write input"
            )
    return new
