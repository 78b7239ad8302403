"""Entry points: can some user ever have a relation? OpenFGA's ``relation-no-entry-point``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bastion.authz.model._index import Key, ModelIndex, Rewrite, children, leaves

#: Bound on the steps of the entry point search over a whole model.
MAX_ENTRY_SEARCH_STEPS = 200_000


def impossible_relations(model: ModelIndex, *, language: bool) -> list[tuple[str, str, str]]:
    """``(type, relation, reason)`` for every relation no user can have; the reason is
    ``potential loop`` or ``no entrypoint`` as OpenFGA words it, or ``cycle``.

    OpenFGA's server refuses every cycle of computed relations (``a: admin or b``,
    ``b: admin or a``): reason ``cycle``. Its language tooling (``language=True``) accepts such
    a cycle unless a relation on it is directly assignable (then ``potential loop``).
    """
    reachable = _EntryPoints(model).solve()
    search = _EntrySearch(model, reachable)
    found: list[tuple[str, str, str]] = []
    for type_name, definition in model.types.items():
        cyclic = _computed_cycles(definition, assignable_only=language)
        for relation, rewrite in (definition.get("relations") or {}).items():
            key = (type_name, str(relation))
            if language and relation in cyclic:
                found.append((type_name, str(relation), "potential loop"))
                continue
            if key in reachable:
                if relation in cyclic:  # server rules: reachable, yet on a cycle
                    found.append((type_name, str(relation), "cycle"))
                continue
            try:
                loop = search.run(key, rewrite, frozenset({key}))[1]
            except _TooComplex:
                loop = True  # the search went round and round: report it as a loop
            found.append((type_name, str(relation), "potential loop" if loop else "no entrypoint"))
    return found


def _computed_cycles(definition: Mapping[str, Any], *, assignable_only: bool) -> set[str]:
    """Relations on a cycle of computed relations (``x: [user] or y``, ``y: [user] or x``);
    with ``assignable_only``, only cycles where some relation is directly assignable."""
    relations: Mapping[str, Rewrite] = definition.get("relations") or {}
    edges = {
        str(name): {
            str(leaf["computedUserset"].get("relation"))
            for leaf in leaves(rewrite)
            if "computedUserset" in leaf
        }
        for name, rewrite in relations.items()
    }
    cyclic: set[str] = set()
    for start, targets in edges.items():
        seen: set[str] = set()
        stack = list(targets)
        while stack:
            current = stack.pop()
            if current == start:
                cyclic.add(start)
                break
            if current in seen or current not in edges:
                continue
            seen.add(current)
            stack.extend(edges[current])
    if not assignable_only:
        return cyclic
    assignable = {
        name for name in cyclic if any("this" in leaf for leaf in leaves(relations[name]))
    }
    # Members of one cycle reach each other: keep those that share a cycle with an assignable.
    return {
        name
        for name in cyclic
        if any(
            _reaches(edges, name, other) and _reaches(edges, other, name) for other in assignable
        )
    }


def _reaches(edges: Mapping[str, set[str]], start: str, goal: str) -> bool:
    if start == goal:
        return True
    seen: set[str] = set()
    stack = list(edges.get(start, ()))
    while stack:
        current = stack.pop()
        if current == goal:
            return True
        if current not in seen:
            seen.add(current)
            stack.extend(edges.get(current, ()))
    return False


class _TooComplex(Exception):
    """The entry point search exceeded its step budget."""


class _EntryPoints:
    """The relations some user can have: the least fixpoint of the rewrite equations.

    Polynomial, and equal to what the path-based search finds; the search then runs only for
    the relations without an entry point, to tell a loop from a dead end."""

    def __init__(self, model: ModelIndex) -> None:
        self.model = model
        self.known: set[Key] = set()

    def solve(self) -> set[Key]:
        changed = True
        while changed:
            changed = False
            for type_name in self.model.types:
                for relation, rewrite in self.model.relations(type_name).items():
                    key = (type_name, str(relation))
                    if key not in self.known and self.holds(key, rewrite):
                        self.known.add(key)
                        changed = True
        return self.known

    def holds(self, key: Key, node: Rewrite) -> bool:
        if "this" in node:
            return any(
                not entry.get("relation")
                or (str(entry["type"]), str(entry["relation"])) in self.known
                for entry in self.model.direct(*key)
            )
        if "computedUserset" in node:
            return (key[0], str(node["computedUserset"]["relation"])) in self.known
        if "tupleToUserset" in node:
            ttu = node["tupleToUserset"]
            computed = str(ttu["computedUserset"]["relation"])
            return any(
                (str(entry["type"]), computed) in self.known
                for entry in self.model.direct(key[0], str(ttu["tupleset"]["relation"]))
                if not entry.get("relation")
            )
        if "union" in node:
            return any(self.holds(key, child) for child in node["union"]["child"])
        operands = children(node)
        return bool(operands) and all(self.holds(key, child) for child in operands)


class _EntrySearch:
    """OpenFGA's entry point search (``hasEntryPointOrLoop`` in its language tooling).

    A relation has an entry point if some user can have it without going round a cycle.
    ``this`` and ``from`` revisiting a relation on the path simply skip it (a recursive
    group or folder is fine); a computed relation revisiting one is a loop. A union needs one
    child with an entry point, an intersection and a ``but not`` need all of theirs; a relation
    without one is impossible, ``potential loop`` if a loop was met. The search is bounded by
    :data:`MAX_ENTRY_SEARCH_STEPS` in all (a crafted model cannot make validation explode).
    """

    def __init__(self, model: ModelIndex, reachable: set[Key]) -> None:
        self.model = model
        self.reachable = reachable
        self.steps = 0

    def run(  # noqa: PLR0911 - one return per rewrite kind
        self, key: Key, node: Rewrite, path: frozenset[Key]
    ) -> tuple[bool, bool]:
        """(has an entry point, met a loop) for ``node``, a rewrite of relation ``key``."""
        self.steps += 1
        if self.steps > MAX_ENTRY_SEARCH_STEPS:
            raise _TooComplex
        if "this" in node:
            return self.direct(key, path), False
        if "computedUserset" in node:
            return self.computed(key[0], str(node["computedUserset"].get("relation")), path)
        if "tupleToUserset" in node:
            return self.tuple_to_userset(key[0], node["tupleToUserset"], path), False
        if "union" in node:
            any_loop = False
            for child in node["union"].get("child") or []:
                child_entry, loop = self.run(key, child, path)
                if child_entry:
                    return True, False
                any_loop = any_loop or loop
            return False, any_loop
        operands = children(node)  # intersection, difference: every operand needs one
        for child in operands:
            child_entry, loop = self.run(key, child, path)
            if not child_entry:
                return False, loop
        return bool(operands), False

    def computed(self, type_name: str, relation: str, path: frozenset[Key]) -> tuple[bool, bool]:
        rewrite = self.model.relations(type_name).get(relation)
        if rewrite is None:
            return False, False
        target = (type_name, relation)
        if target in path:
            return False, True
        if target in self.reachable:
            return True, False
        return self.run(target, rewrite, path | {target})

    def direct(self, key: Key, path: frozenset[Key]) -> bool:
        for entry in self.model.direct(*key):
            if not entry.get("relation"):
                return True
            target = (str(entry.get("type")), str(entry["relation"]))
            rewrite = self.model.relations(target[0]).get(target[1])
            if rewrite is None or target in path:
                continue
            if target in self.reachable or self.run(target, rewrite, path | {target})[0]:
                return True
        return False

    def tuple_to_userset(
        self, type_name: str, ttu: Mapping[str, Any], path: frozenset[Key]
    ) -> bool:
        computed = str(ttu["computedUserset"].get("relation"))
        for entry in self.model.direct(type_name, str(ttu["tupleset"].get("relation"))):
            target = (str(entry.get("type")), computed)
            rewrite = self.model.relations(target[0]).get(computed)
            if rewrite is None or target in path:
                continue
            if target in self.reachable or self.run(target, rewrite, path | {target})[0]:
                return True
        return False
