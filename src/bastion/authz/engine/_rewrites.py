"""A relation's rewrite as a tree: OpenFGA's userset operators, parsed from the API JSON."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from bastion.authz.errors import ValidationError

__all__ = [
    "RELATION_RE",
    "Computed",
    "Difference",
    "Intersection",
    "Rewrite",
    "This",
    "TupleToUserset",
    "Union",
    "parse_rewrite",
    "walk",
]

#: OpenFGA's format of a type or relation name (pkg/tuple): no separators, no whitespace.
RELATION_RE = re.compile(r"[^:#@\s]{1,50}")


class Rewrite:
    """A node of a relation's rewrite tree."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class This(Rewrite):
    """Direct assignment: tuples on the object itself (``[user, group#member]``)."""


@dataclass(frozen=True, slots=True)
class Computed(Rewrite):
    """Another relation of the same object (``define viewer: editor``)."""

    relation: str


@dataclass(frozen=True, slots=True)
class TupleToUserset(Rewrite):
    """``relation from tupleset``: the relation on every object the tupleset points to."""

    tupleset: str
    relation: str


@dataclass(frozen=True, slots=True)
class Union(Rewrite):
    children: tuple[Rewrite, ...]


@dataclass(frozen=True, slots=True)
class Intersection(Rewrite):
    children: tuple[Rewrite, ...]


@dataclass(frozen=True, slots=True)
class Difference(Rewrite):
    base: Rewrite
    subtract: Rewrite


def parse_rewrite(node: Mapping[str, Any]) -> Rewrite:
    """Turn OpenFGA's JSON userset into a :class:`Rewrite`; raises ValidationError if malformed."""
    if not isinstance(node, Mapping) or len(node) != 1:
        raise ValidationError("a relation rewrite must have exactly one operator")
    ((kind, body),) = node.items()
    if kind == "this":
        return This()
    if kind == "computedUserset":
        return Computed(_name(body.get("relation")))
    if kind == "tupleToUserset":
        return TupleToUserset(
            _name(body["tupleset"].get("relation")), _name(body["computedUserset"].get("relation"))
        )
    if kind in {"union", "intersection"}:
        children = tuple(parse_rewrite(c) for c in body.get("child") or ())
        if not children:
            raise ValidationError(f"a {kind} needs at least one operand")
        return Union(children) if kind == "union" else Intersection(children)
    if kind == "difference":
        return Difference(parse_rewrite(body["base"]), parse_rewrite(body["subtract"]))
    raise ValidationError(f"unknown relation rewrite '{kind}'")


def _name(value: object) -> str:
    if not isinstance(value, str) or not RELATION_RE.fullmatch(value):
        raise ValidationError("a relation name is missing or malformed")
    return value


def walk(rewrite: Rewrite, *, include_subtract: bool = True) -> Iterator[Rewrite]:
    """Yield every node of a rewrite tree (leaves included)."""
    yield rewrite
    if isinstance(rewrite, Union | Intersection):
        for child in rewrite.children:
            yield from walk(child, include_subtract=include_subtract)
    elif isinstance(rewrite, Difference):
        yield from walk(rewrite.base, include_subtract=include_subtract)
        if include_subtract:
            yield from walk(rewrite.subtract, include_subtract=include_subtract)
