"""Bastion's authorization engine: OpenFGA-compatible evaluation of a compiled model.

    engine = Engine(model)                      # compile once per model version
    engine.check(index, "document:1", "viewer", "user:anne", context={...})
    engine.list_objects(index, "document", "viewer", "user:anne")

The engine is synchronous and evaluates over a :class:`~bastion.authz.tuples.TupleSource`
(an in-memory index kept current by the service layer) plus per-request contextual tuples.
"""

from bastion.authz.engine._check import MAX_RESOLUTION_DEPTH
from bastion.authz.engine._engine import (
    MAX_CONTEXTUAL_TUPLES,
    BatchCheckItem,
    CheckRequest,
    CheckResult,
    Engine,
    ListPage,
)
from bastion.authz.engine._explain import Explanation, Step
from bastion.authz.engine._typesystem import TypeSystem

__all__ = [
    "MAX_CONTEXTUAL_TUPLES",
    "MAX_RESOLUTION_DEPTH",
    "BatchCheckItem",
    "CheckRequest",
    "CheckResult",
    "Engine",
    "Explanation",
    "ListPage",
    "Step",
    "TypeSystem",
]
