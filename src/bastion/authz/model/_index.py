"""Read-only views of a model's JSON shared by the validation passes (shape already checked)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

Rewrite = Mapping[str, Any]
Key = tuple[str, str]


def leaves(node: Rewrite) -> Iterator[Rewrite]:
    """The ``this``, ``computedUserset`` and ``tupleToUserset`` nodes of a rewrite."""
    for key in ("union", "intersection"):
        if key in node:
            for child in node[key].get("child") or []:
                yield from leaves(child)
            return
    if "difference" in node:
        yield from leaves(node["difference"]["base"])
        yield from leaves(node["difference"]["subtract"])
        return
    yield node


def partial(node: Rewrite) -> str | None:
    if "computedUserset" in node:
        return str(node["computedUserset"].get("relation"))
    if "tupleToUserset" in node:
        ttu = node["tupleToUserset"]
        return f"{ttu['computedUserset'].get('relation')} from {ttu['tupleset'].get('relation')}"
    return None


def restriction(entry: Mapping[str, Any]) -> str:
    text = str(entry.get("type"))
    if entry.get("wildcard") is not None and "wildcard" in entry:
        text += ":*"
    elif entry.get("relation"):
        text += f"#{entry['relation']}"
    return text


class ModelIndex:
    """Indexes of a model for the checks."""

    def __init__(self, model: Mapping[str, Any]) -> None:
        self.types: dict[str, Mapping[str, Any]] = {}
        for definition in model.get("type_definitions") or []:
            self.types.setdefault(str(definition.get("type")), definition)
        self.conditions: Mapping[str, Any] = model.get("conditions") or {}

    def relations(self, type_name: str) -> Mapping[str, Rewrite]:
        definition = self.types.get(type_name) or {}
        return definition.get("relations") or {}

    def direct(self, type_name: str, relation: str) -> list[Mapping[str, Any]]:
        metadata = (self.types.get(type_name) or {}).get("metadata") or {}
        entry = (metadata.get("relations") or {}).get(relation) or {}
        return list(entry.get("directly_related_user_types") or [])


def children(node: Rewrite) -> list[Rewrite]:
    """The operands of a union, intersection or difference (none for a leaf)."""
    for key in ("union", "intersection"):
        if key in node:
            return list(node[key].get("child") or [])
    if "difference" in node:
        return [node["difference"]["base"], node["difference"]["subtract"]]
    return []
