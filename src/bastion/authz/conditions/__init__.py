"""Conditions: CEL expressions with typed parameters on relationship tuples (OpenFGA's ABAC).

    compile_condition(model["conditions"]["name"]) -> CompiledCondition
    CompiledCondition.evaluate(tuple_context, request_context) -> bool

Compilation type-checks the expression against the declared parameters and requires a ``bool``
result (OpenFGA's model-write check). Evaluation merges the request context with the tuple's
(the tuple's value wins), converts each declared parameter by OpenFGA's rules, and raises
:class:`~bastion.authz.errors.ConditionError` for a missing parameter, a failed conversion, an
oversized context or an evaluation error: a condition never fails into a silent ``False``.
Expiring grants are ``current_time < grant_time + grant_duration`` with ``timestamp`` and
``duration`` parameters; the caller supplies ``current_time`` from its clock on every check.
"""

from bastion.authz.conditions._compile import (
    CEL_ITERATION_BUDGET,
    MAX_COLLECTION_ITEMS,
    CompiledCondition,
    compile_condition,
)
from bastion.authz.conditions._types import ConversionFailed, ParameterType, TypeName

__all__ = [
    "CEL_ITERATION_BUDGET",
    "MAX_COLLECTION_ITEMS",
    "CompiledCondition",
    "ConversionFailed",
    "ParameterType",
    "TypeName",
    "compile_condition",
]
