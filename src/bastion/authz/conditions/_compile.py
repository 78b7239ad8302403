"""Compiling and evaluating a condition with Google's CEL (``cel-expr-python``).

Each condition is compiled twice:

- against a *checking* environment that declares every parameter with its exact type and
  ``ipaddress`` as an abstract type with ``in_cidr(string)`` and the ``ipaddress(string)``
  constructor: this is the type check OpenFGA runs at model write (undeclared names, wrong
  operand types and a result that is not ``bool`` are refused);
- against a *running* environment where ``ipaddress`` values are canonical address strings
  (the library cannot carry values of an abstract type), typed ``dyn`` so the checked
  expression's comparisons with ``null`` and other ``ipaddress`` values still hold.

Evaluation is bounded twice: before evaluating, list and map parameter values may hold at most
:data:`MAX_COLLECTION_ITEMS` elements and entries in all (counted recursively), which bounds
membership tests, indexing and conversion; during evaluation, the library stops any expression
after :data:`CEL_ITERATION_BUDGET` comprehension iterations (``all``, ``exists``, ``map``...,
nested ones multiply), which bounds the rest. OpenFGA bounds evaluation by a CEL cost limit
instead; neither Python library offers one.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from bastion.authz.conditions._types import (
    ConversionFailed,
    ParameterType,
    TypeName,
    canonical_ip,
)
from bastion.authz.errors import ConditionError

if TYPE_CHECKING:
    from cel_expr_python import cel

#: The most list elements plus map entries all list/map parameter values of one evaluation
#: may hold together, counted recursively. Larger contexts are refused before evaluation.
MAX_COLLECTION_ITEMS = 1_000
#: The library's own bound on comprehension iterations in one evaluation (measured on
#: cel-expr-python 0.1.3: a single ``exists`` over 10,000 elements is refused).
CEL_ITERATION_BUDGET = 10_000


# The CEL library is imported on the first condition compiled, not with this module: its native
# module and bindings weigh ~7 MiB of every worker's memory, and most workers never compile a
# condition (the built-in model's is compiled only when stored or first checked).
@functools.cache
def _ipaddress_type() -> cel.Type:
    from cel_expr_python import cel  # noqa: PLC0415

    return cel.Type.AbstractType("ipaddress")


@functools.cache
def _scalars() -> dict[TypeName, cel.Type]:
    from cel_expr_python import cel  # noqa: PLC0415

    types = cel.Type
    return {
        TypeName.ANY: types.DYN,
        TypeName.BOOL: types.BOOL,
        TypeName.STRING: types.STRING,
        TypeName.INT: types.INT,
        TypeName.UINT: types.UINT,
        TypeName.DOUBLE: types.DOUBLE,
        TypeName.BYTES: types.BYTES,
        TypeName.DURATION: types.DURATION,
        TypeName.TIMESTAMP: types.TIMESTAMP,
    }


def _in_cidr(address: str, cidr: str) -> bool:
    # Host bits may be set ("10.9.9.9/8"), as Go's netip.ParsePrefix accepts; a malformed CIDR
    # raises, which the library turns into an evaluation error (never a silent false).
    return ipaddress.ip_address(address) in ipaddress.ip_network(cidr, strict=False)


def _to_ipaddress(text: str) -> str:
    return canonical_ip(text)


def _checking_functions() -> list[cel.FunctionDecl]:
    from cel_expr_python import cel  # noqa: PLC0415 - on first use (see _ipaddress_type)

    return [
        cel.FunctionDecl(
            "in_cidr",
            [
                cel.Overload(
                    "ipaddress_in_cidr", cel.Type.BOOL, [_ipaddress_type(), cel.Type.STRING], True
                )
            ],
        ),
        cel.FunctionDecl(
            "ipaddress", [cel.Overload("string_to_ipaddress", _ipaddress_type(), [cel.Type.STRING])]
        ),
    ]


def _running_functions() -> list[cel.FunctionDecl]:
    from cel_expr_python import cel  # noqa: PLC0415 - on first use (see _ipaddress_type)

    return [
        cel.FunctionDecl(
            "in_cidr",
            [
                cel.Overload(
                    "ipaddress_in_cidr",
                    cel.Type.BOOL,
                    [cel.Type.STRING, cel.Type.STRING],
                    is_member=True,
                    impl=_in_cidr,
                )
            ],
        ),
        cel.FunctionDecl(
            "ipaddress",
            [
                cel.Overload(
                    "string_to_ipaddress", cel.Type.DYN, [cel.Type.STRING], impl=_to_ipaddress
                )
            ],
        ),
    ]


def _cel_type(kind: ParameterType, *, running: bool) -> cel.Type:
    from cel_expr_python import cel  # noqa: PLC0415 - on first use (see _ipaddress_type)

    if kind.contains(TypeName.IPADDRESS) and running:
        return cel.Type.DYN
    if kind.name is TypeName.IPADDRESS:
        return _ipaddress_type()
    if kind.generic is not None:
        element = _cel_type(kind.generic, running=running)
        if kind.name is TypeName.LIST:
            return cel.Type.List(element)
        return cel.Type.Map(cel.Type.STRING, element)
    return _scalars()[kind.name]


def _library_message(error: Exception) -> str:
    """The library's first message line without its status prefix (it names no internals)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    for prefix in ("INVALID_ARGUMENT: ", "ERROR: ", "<input>:"):
        text = text.removeprefix(prefix)
    return text


def _parameters(definition: Mapping[str, Any], name: str) -> dict[str, ParameterType]:
    raw = definition.get("parameters")
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConditionError(f"condition '{name}': parameters must be an object")
    parameters: dict[str, ParameterType] = {}
    for parameter, kind in raw.items():
        try:
            parameters[str(parameter)] = ParameterType.from_json(kind)
        except ValueError as error:
            raise ConditionError(f"condition '{name}': parameter '{parameter}': {error}") from error
    return parameters


def _exceeds(values: Iterator[Any], limit: int) -> bool:
    """Whether the values hold more than ``limit`` list elements and map entries (iterative:
    deeply nested input cannot exhaust the stack)."""
    stack = list(values)
    count = 0
    while stack:
        value = stack.pop()
        if isinstance(value, Mapping):
            items: list[Any] = list(value.values())
        elif isinstance(value, list | tuple):
            items = list(value)
        else:
            continue
        count += len(items)
        if count > limit:
            return True
        stack.extend(items)
    return False


class CompiledCondition:
    """A type-checked condition, ready to evaluate any number of times from any thread."""

    __slots__ = (
        "_collections",
        "_kinds",
        "_names",
        "_program",
        "expression",
        "name",
        "parameters",
    )

    def __init__(self, name: str, expression: str, parameters: Mapping[str, ParameterType]) -> None:
        self.name = name
        self.expression = expression
        self.parameters: Mapping[str, ParameterType] = dict(parameters)
        self._names = frozenset(self.parameters)
        self._kinds = tuple(self.parameters.items())
        # Only these can hold collections; the size pre-check skips the others.
        self._collections = tuple(
            p
            for p, k in self.parameters.items()
            if k.name in (TypeName.LIST, TypeName.MAP, TypeName.ANY)
        )
        from cel_expr_python import cel  # noqa: PLC0415 - on first use (see _ipaddress_type)

        checking = cel.NewEnv(
            variables={p: _cel_type(k, running=False) for p, k in self.parameters.items()},
            functions=_checking_functions(),
        )
        try:
            checked = checking.compile(expression)
        except RuntimeError as error:
            raise ConditionError(
                f"condition '{name}': the expression is invalid: {_library_message(error)}"
            ) from error
        if checked.return_type() != cel.Type.BOOL:
            raise ConditionError(
                f"condition '{name}': the expression must return bool, "
                f"not {checked.return_type().name()}"
            )
        running = cel.NewEnv(
            variables={p: _cel_type(k, running=True) for p, k in self.parameters.items()},
            functions=_running_functions(),
        )
        try:
            self._program = running.compile(expression)
        except RuntimeError:  # pragma: no cover - the running types are looser than the checked
            self._program = running.compile(expression, disable_check=True)

    def __repr__(self) -> str:
        return f"CompiledCondition(name={self.name!r}, expression={self.expression!r})"

    def evaluate(
        self,
        tuple_context: Mapping[str, Any] | None = None,
        request_context: Mapping[str, Any] | None = None,
    ) -> bool:
        """Evaluate with the merged context; raises :class:`ConditionError` for a missing or
        unconvertible parameter, an oversized context, or an evaluation error."""
        merged: dict[str, Any] = dict(request_context) if request_context else {}
        if tuple_context:
            merged.update(tuple_context)  # OpenFGA: the tuple's value wins on a conflict
        if not self._names <= merged.keys():
            missing = ", ".join(sorted(self._names - merged.keys()))
            raise ConditionError(f"condition '{self.name}': missing context parameters: {missing}")
        if self._collections and _exceeds(
            iter([merged[p] for p in self._collections]), MAX_COLLECTION_ITEMS
        ):
            raise ConditionError(
                f"condition '{self.name}': the context holds more than "
                f"{MAX_COLLECTION_ITEMS} list elements and map entries"
            )
        try:
            data = {parameter: kind.convert(merged[parameter]) for parameter, kind in self._kinds}
        except ConversionFailed as error:
            raise self._conversion_error(merged) from error
        return self._run(data)

    def _conversion_error(self, merged: Mapping[str, Any]) -> ConditionError:
        """The error naming the first parameter that does not convert."""
        for parameter, kind in self._kinds:
            try:
                kind.convert(merged[parameter])
            except ConversionFailed as error:
                return ConditionError(
                    f"condition '{self.name}': parameter '{parameter}' of type "
                    f"{kind.to_dsl()}: {error}"
                )
        return ConditionError(f"condition '{self.name}': a parameter does not convert")

    def _run(self, data: Mapping[str, Any]) -> bool:
        try:
            result = self._program.eval(data=data)
        except RuntimeError as error:  # the iteration budget, or a value the library refuses
            raise ConditionError(
                f"condition '{self.name}': evaluation failed: {_library_message(error)}"
            ) from error
        value = result.value()
        if type(value) is not bool:  # an error value (or, never after the type check, not bool)
            raise ConditionError(
                f"condition '{self.name}': evaluation failed: {_library_message_of(result)}"
            )
        return value


def _library_message_of(result: cel.Value) -> str:
    """The message of an error value (or the type of a non-boolean result)."""
    from cel_expr_python import cel  # noqa: PLC0415 - on first use (see _ipaddress_type)

    if result.type() == cel.Type.ERROR:
        return _library_message(Exception(str(result.value())))
    return f"the expression produced {result.type().name()}, not bool"


def compile_condition(definition: Mapping[str, Any]) -> CompiledCondition:
    """Compile one entry of a model's ``conditions`` map.

    Returns a :class:`CompiledCondition`. Raises :class:`ConditionError` (OpenFGA 2000) if the
    definition is malformed, a parameter type is unknown, or the expression does not compile,
    does not type-check against the declared parameters, or does not return ``bool``.
    """
    if not isinstance(definition, Mapping):
        raise ConditionError("a condition must be an object")
    name = definition.get("name")
    expression = definition.get("expression")
    if not isinstance(name, str) or not name:
        raise ConditionError("a condition needs a name")
    if not isinstance(expression, str) or not expression.strip():
        raise ConditionError(f"condition '{name}': the expression is empty")
    return CompiledCondition(name, expression, _parameters(definition, name))
