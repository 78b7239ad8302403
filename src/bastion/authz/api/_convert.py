"""Conversions between OpenFGA's JSON and the store's and engine's values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from bastion.authz.api.schemas import ContextualTuplesIn, TupleKeyIn
from bastion.authz.engine import ListPage
from bastion.authz.store import Change, ModelRecord, StoredTuple, StoreRecord
from bastion.authz.tuples import Tuple

__all__ = [
    "change_json",
    "contextual",
    "list_objects_json",
    "list_users_json",
    "model_json",
    "store_json",
    "timestamp",
    "tuple_json",
    "tuple_of",
    "user_json",
]


def timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, as OpenFGA writes timestamps."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def store_json(record: StoreRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "created_at": timestamp(record.created_at),
        "updated_at": timestamp(record.updated_at),
    }


def model_json(record: ModelRecord) -> dict[str, Any]:
    model = dict(record.model)
    return {
        "id": record.id,
        "schema_version": record.schema_version,
        "type_definitions": model.get("type_definitions", []),
        "conditions": model.get("conditions") or {},
    }


def tuple_of(key: TupleKeyIn) -> Tuple:
    condition = key.condition
    if condition is None:
        return Tuple(key.object, key.relation, key.user)
    return Tuple(key.object, key.relation, key.user, condition.name, condition.context)


def contextual(tuples: ContextualTuplesIn | Sequence[TupleKeyIn] | None) -> tuple[Tuple, ...]:
    if tuples is None:
        return ()
    keys = tuples.tuple_keys if isinstance(tuples, ContextualTuplesIn) else tuples
    return tuple(tuple_of(k) for k in keys or ())


def tuple_key_json(t: Tuple) -> dict[str, Any]:
    key: dict[str, Any] = {"object": t.object, "relation": t.relation, "user": t.user}
    if t.condition:
        key["condition"] = {"name": t.condition, "context": dict(t.context or {})}
    return key


def tuple_json(stored: StoredTuple) -> dict[str, Any]:
    return {"key": tuple_key_json(stored.tuple), "timestamp": timestamp(stored.timestamp)}


def change_json(change: Change) -> dict[str, Any]:
    return {
        "tuple_key": tuple_key_json(change.tuple),
        "operation": change.operation.value,
        "timestamp": timestamp(change.timestamp),
    }


def user_json(user: str | Mapping[str, Any]) -> dict[str, Any]:
    """OpenFGA's ``User`` for ``"user:anne"``, ``"user:*"`` or ``"group:eng#member"``."""
    if isinstance(user, Mapping):
        return dict(user)
    obj, _, relation = user.partition("#")
    otype, _, oid = obj.partition(":")
    if relation:
        return {"userset": {"type": otype, "id": oid, "relation": relation}}
    if oid == "*":
        return {"wildcard": {"type": otype}}
    return {"object": {"type": otype, "id": oid}}


def list_objects_json(page: ListPage) -> dict[str, Any]:
    return {"objects": list(page.items)}


def list_users_json(page: ListPage) -> dict[str, Any]:
    return {"users": [user_json(u) for u in page.items]}


def expand_json(tree: Mapping[str, Any]) -> dict[str, Any]:
    """OpenFGA's ExpandResponse around the engine's ``{"root": ...}`` tree."""
    return {"tree": dict(tree)}
