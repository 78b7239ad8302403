"""The canonical DSL printer: a model's API JSON -> OpenFGA DSL text.

The layout is the one ``fga model transform`` writes: ``model`` / ``schema``, a blank line
before each type and condition, two spaces of indentation per level, types and relations in
the model's order, conditions and their parameters sorted by name. Parsing the output gives
back the same JSON, with one normalisation: a ``this`` that is not the first child of a union
or intersection is printed first (the DSL only allows a type list at the start; union and
intersection do not depend on the order of their children).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bastion.authz.conditions import ParameterType
from bastion.authz.errors import ValidationError
from bastion.authz.model._shape import ShapeError, check_shape

_OPERATOR = {"union": "or", "intersection": "and"}


def _restriction(entry: Mapping[str, Any]) -> str:
    text = str(entry["type"])
    if "wildcard" in entry and entry["wildcard"] is not None:
        text += ":*"
    elif entry.get("relation"):
        text += f"#{entry['relation']}"
    if entry.get("condition"):
        text += f" with {entry['condition']}"
    return text


def _direct(direct: Sequence[Mapping[str, Any]]) -> str:
    return "[" + ", ".join(_restriction(entry) for entry in direct) + "]"


def _is_operation(node: Mapping[str, Any]) -> bool:
    return any(key in node for key in ("union", "intersection", "difference"))


def _child(node: Mapping[str, Any], direct: Sequence[Mapping[str, Any]]) -> str:
    text = _expression(node, direct)
    return f"({text})" if _is_operation(node) else text


def _expression(node: Mapping[str, Any], direct: Sequence[Mapping[str, Any]]) -> str:
    if "this" in node:
        return _direct(direct)
    if "computedUserset" in node:
        return str(node["computedUserset"]["relation"])
    if "tupleToUserset" in node:
        ttu = node["tupleToUserset"]
        return f"{ttu['computedUserset']['relation']} from {ttu['tupleset']['relation']}"
    for key, word in _OPERATOR.items():
        if key in node:
            children = list(node[key].get("child") or [])
            children.sort(key=lambda child: "this" not in child)  # stable: only moves `this`
            return f" {word} ".join(_child(child, direct) for child in children)
    if "difference" in node:
        difference = node["difference"]
        base = _child(difference["base"], direct)
        return f"{base} but not {_child(difference['subtract'], direct)}"
    raise ValueError(f"unknown relation rewrite {sorted(node)}")


def _expressible(node: Mapping[str, Any], *, may_hold_this: bool = True) -> int:
    """How many ``this`` the rewrite holds; -1 if one sits where the DSL cannot put it (in a
    ``but not`` subtraction)."""
    if "this" in node:
        return 1 if may_hold_this else -1
    counts = [
        _expressible(child, may_hold_this=may_hold_this)
        for key in ("union", "intersection")
        for child in (node.get(key) or {}).get("child") or []
    ]
    if "difference" in node:
        counts.append(_expressible(node["difference"]["base"], may_hold_this=may_hold_this))
        counts.append(_expressible(node["difference"]["subtract"], may_hold_this=False))
    return -1 if -1 in counts else sum(counts)


def _type_definition(definition: Mapping[str, Any]) -> list[str]:
    lines = ["", f"type {definition['type']}"]
    relations: Mapping[str, Any] = definition.get("relations") or {}
    if not relations:
        return lines
    metadata = (definition.get("metadata") or {}).get("relations") or {}
    lines.append("  relations")
    for name, rewrite in relations.items():
        direct = (metadata.get(name) or {}).get("directly_related_user_types") or []
        if _expressible(rewrite) not in (0, 1):
            raise ValidationError(
                f"the '{name}' relation definition under the '{definition['type']}' type is "
                "not supported by the OpenFGA DSL syntax yet"
            )
        lines.append(f"    define {name}: {_expression(rewrite, direct)}")
    return lines


def _condition(definition: Mapping[str, Any]) -> list[str]:
    parameters: Mapping[str, Any] = definition.get("parameters") or {}
    declared = ", ".join(
        f"{name}: {ParameterType.from_json(parameters[name]).to_dsl()}"
        for name in sorted(parameters)
    )
    return [
        "",
        f"condition {definition['name']}({declared}) {{",
        f"  {str(definition['expression']).strip()}",
        "}",
    ]


def render_dsl(model: Mapping[str, Any]) -> str:
    """Print a model (API JSON form) as canonical OpenFGA DSL; ``parse_dsl`` reads it back.

    Raises :class:`~bastion.authz.errors.ValidationError` for JSON without a model's shape or
    a relation the DSL cannot express (a ``this`` under ``but not``, or two of them).
    """
    try:
        check_shape(model)
    except ShapeError as error:
        raise ValidationError(str(error)) from error
    lines = ["model", f"  schema {model.get('schema_version') or '1.1'}"]
    for definition in model.get("type_definitions") or []:
        lines.extend(_type_definition(definition))
    conditions: Mapping[str, Any] = model.get("conditions") or {}
    for name in sorted(conditions):
        lines.extend(_condition({**conditions[name], "name": conditions[name].get("name", name)}))
    return "\n".join(lines) + "\n"
