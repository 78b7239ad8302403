"""The structural check of a model's JSON, run before any semantic rule.

A model arrives from clients as arbitrary JSON. Every later pass (validation, the printer,
the engine's compiler) may then rely on this shape; anything else is one ``invalid-json``
issue naming the first offending path, never a crash.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_REWRITE_KEYS = frozenset(
    {"this", "computedUserset", "tupleToUserset", "union", "intersection", "difference"}
)
#: Rewrites nest; deeper than this is refused (bounds recursion in every later pass).
MAX_REWRITE_DEPTH = 64


class ShapeError(ValueError):
    """The JSON does not have a model's shape; the message names the path."""


def _object(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ShapeError(f"{path} must be an object")
    return value


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise ShapeError(f"{path} must be a non-empty string")
    return value


def _relation_ref(value: Any, path: str) -> None:
    _string(_object(value, path).get("relation"), f"{path}.relation")


def _rewrite(node: Any, path: str, depth: int = 0) -> None:
    if depth > MAX_REWRITE_DEPTH:
        raise ShapeError(f"{path} nests deeper than {MAX_REWRITE_DEPTH} levels")
    node = _object(node, path)
    keys = list(node)
    if len(keys) != 1 or keys[0] not in _REWRITE_KEYS:
        raise ShapeError(f"{path} must have exactly one of {', '.join(sorted(_REWRITE_KEYS))}")
    key = keys[0]
    value = node[key]
    if key == "this":
        _object(value, f"{path}.this")
    elif key == "computedUserset":
        _relation_ref(value, f"{path}.computedUserset")
    elif key == "tupleToUserset":
        ttu = _object(value, f"{path}.tupleToUserset")
        _relation_ref(ttu.get("tupleset"), f"{path}.tupleToUserset.tupleset")
        _relation_ref(ttu.get("computedUserset"), f"{path}.tupleToUserset.computedUserset")
    elif key == "difference":
        difference = _object(value, f"{path}.difference")
        _rewrite(difference.get("base"), f"{path}.difference.base", depth + 1)
        _rewrite(difference.get("subtract"), f"{path}.difference.subtract", depth + 1)
    else:
        children = _object(value, f"{path}.{key}").get("child")
        if not isinstance(children, list) or not children:
            raise ShapeError(f"{path}.{key}.child must be a non-empty list")
        for index, child in enumerate(children):
            _rewrite(child, f"{path}.{key}.child[{index}]", depth + 1)


def _direct_entry(entry: Any, path: str) -> None:
    entry = _object(entry, path)
    _string(entry.get("type"), f"{path}.type")
    for key in ("relation", "condition"):
        if entry.get(key) not in (None, "") and not isinstance(entry.get(key), str):
            raise ShapeError(f"{path}.{key} must be a string")
    if entry.get("wildcard") is not None:
        _object(entry["wildcard"], f"{path}.wildcard")
        if entry.get("relation"):
            raise ShapeError(f"{path} cannot be both a wildcard and a userset")


def _type_definition(definition: Any, path: str) -> None:
    definition = _object(definition, path)
    _string(definition.get("type"), f"{path}.type")
    relations = definition.get("relations") or {}
    for name, rewrite in _object(relations, f"{path}.relations").items():
        _rewrite(rewrite, f"{path}.relations.{name}")
    metadata = definition.get("metadata") or {}
    metadata_relations = _object(metadata, f"{path}.metadata").get("relations") or {}
    for name, entry in _object(metadata_relations, f"{path}.metadata.relations").items():
        direct = _object(entry, f"{path}.metadata.relations.{name}").get(
            "directly_related_user_types"
        )
        if direct is None:
            continue
        if not isinstance(direct, list):
            raise ShapeError(f"{path}.metadata.relations.{name}.directly_related_user_types")
        for index, item in enumerate(direct):
            _direct_entry(item, f"{path}.metadata.relations.{name}[{index}]")


def _condition(definition: Any, path: str) -> None:
    definition = _object(definition, path)
    _string(definition.get("expression"), f"{path}.expression")
    if definition.get("name") is not None:
        _string(definition["name"], f"{path}.name")
    _object(definition.get("parameters") or {}, f"{path}.parameters")


def check_shape(model: Any) -> None:
    """Raise :class:`ShapeError` unless ``model`` has the shape of a model's API JSON."""
    model = _object(model, "the model")
    version = model.get("schema_version")
    if version is not None and not isinstance(version, str):
        raise ShapeError("schema_version must be a string")
    definitions = model.get("type_definitions") or []
    if not isinstance(definitions, list):
        raise ShapeError("type_definitions must be a list")
    for index, definition in enumerate(definitions):
        _type_definition(definition, f"type_definitions[{index}]")
    conditions = _object(model.get("conditions") or {}, "conditions")
    for name, definition in conditions.items():
        _condition(definition, f"conditions.{name}")
