"""Helpers for the engine tests: a model from DSL, tuples from ``object#relation@user`` text."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bastion.authz.engine import Engine
from bastion.authz.model import parse_dsl
from bastion.authz.tuples import MemoryTupleIndex, Tuple


def tup(text: str, condition: str | None = None, context: Mapping[str, Any] | None = None) -> Tuple:
    """``"document:1#viewer@user:anne"`` -> Tuple (the user may itself hold a ``#``)."""
    obj_rel, _, user = text.partition("@")
    obj, _, relation = obj_rel.partition("#")
    return Tuple(obj, relation, user, condition, context)


def build(dsl: str, *tuples: str | Tuple) -> tuple[Engine, MemoryTupleIndex]:
    """An engine for the model and an index of valid tuples (each validated like a write)."""
    engine = Engine(parse_dsl(dsl))
    index = MemoryTupleIndex()
    for item in tuples:
        t = tup(item) if isinstance(item, str) else item
        engine.validate_tuple(t)
        index.add(t)
    return engine, index
