"""Candidate search for ListObjects and ListUsers.

Both work in two phases: a graph search over the tuples finds a *superset* of the answer
(conditions and ``and`` / ``but not`` are ignored, every operand of an intersection and the
base of a difference are followed), then every candidate is confirmed by a full Check. The
answer is therefore exactly the set of objects (users) for which Check says allowed, which is
OpenFGA's contract and the conformance harness's rule.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from bastion.authz.engine._check import MAX_RESOLUTION_DEPTH
from bastion.authz.engine._rewrites import (
    Computed,
    This,
    TupleToUserset,
    walk,
)
from bastion.authz.engine._typesystem import TypeSystem
from bastion.authz.errors import ResolutionTooComplex
from bastion.authz.tuples import TupleSource

__all__ = ["ReverseGraph", "forward_candidates"]

Node = tuple[str, str]  # (object, relation)


@dataclass(slots=True)
class ReverseGraph:
    """Edges from a relation node to the nodes that it can grant (precomputed per model)."""

    #: user type -> (object type, relation) admitting ``user`` directly
    admits_object: dict[str, list[Node]] = field(default_factory=dict)
    #: user type -> (object type, relation) admitting ``user:*``
    admits_wildcard: dict[str, list[Node]] = field(default_factory=dict)
    #: (type, relation) -> (object type, relation) admitting ``type#relation``
    admits_userset: dict[Node, list[Node]] = field(default_factory=dict)
    #: (type, relation) -> relations of the same type that compute from it
    computed_from: dict[Node, list[str]] = field(default_factory=dict)
    #: (parent type, relation) -> (object type, tupleset, relation) computing from it
    tupleset_from: dict[Node, list[tuple[str, str, str]]] = field(default_factory=dict)

    @classmethod
    def build(cls, ts: TypeSystem) -> ReverseGraph:
        graph = cls()
        for t, relations in ts.types.items():
            for name, relation in relations.items():
                for ref in relation.type_refs:
                    if ref.relation:
                        graph.admits_userset.setdefault((ref.type, ref.relation), []).append(
                            (t, name)
                        )
                    elif ref.wildcard:
                        graph.admits_wildcard.setdefault(ref.type, []).append((t, name))
                    else:
                        graph.admits_object.setdefault(ref.type, []).append((t, name))
                for node in walk(relation.rewrite, include_subtract=False):
                    if isinstance(node, Computed):
                        graph.computed_from.setdefault((t, node.relation), []).append(name)
                    elif isinstance(node, TupleToUserset):
                        for parent in ts.tupleset_types(t, node.tupleset):
                            graph.tupleset_from.setdefault((parent, node.relation), []).append(
                                (t, node.tupleset, name)
                            )
        for table in (graph.admits_object, graph.admits_wildcard, graph.admits_userset):
            for key, nodes in table.items():
                table[key] = list(dict.fromkeys(nodes))  # type: ignore[index]
        return graph

    def candidates(
        self, source: TupleSource, object_type: str, relation: str, user: str
    ) -> set[str]:
        """Objects of ``object_type`` that may hold ``relation`` for ``user`` (a superset)."""
        start: list[Node] = []
        user_object, _, user_relation = user.partition("#")
        user_type, _, user_id = user_object.partition(":")
        if user_relation:
            start.append((user_object, user_relation))
        else:
            if user_id != "*":
                for t, r in self.admits_object.get(user_type, ()):
                    start.extend((x.object, r) for x in source.by_user(t, r, user))
            wildcard = f"{user_type}:*"
            for t, r in self.admits_wildcard.get(user_type, ()):
                start.extend((x.object, r) for x in source.by_user(t, r, wildcard))
        found: set[str] = set()
        seen: set[Node] = set(start)
        queue = deque(start)
        while queue:
            obj, rel = queue.popleft()
            obj_type = obj.partition(":")[0]
            if obj_type == object_type and rel == relation:
                found.add(obj)
            following: list[Node] = [(obj, r) for r in self.computed_from.get((obj_type, rel), ())]
            userset = f"{obj}#{rel}"
            for t, r in self.admits_userset.get((obj_type, rel), ()):
                following.extend((x.object, r) for x in source.by_user(t, r, userset))
            for t, tupleset, r in self.tupleset_from.get((obj_type, rel), ()):
                following.extend((x.object, r) for x in source.by_user(t, tupleset, obj))
            for node in following:
                if node not in seen:
                    seen.add(node)
                    queue.append(node)
        return found


def forward_candidates(
    ts: TypeSystem,
    source: TupleSource,
    obj: str,
    relation: str,
    filters: list[tuple[str, str]],
) -> set[str]:
    """Users matching ``filters`` ((type, relation or "")) that may hold ``obj#relation``.

    Raises :class:`ResolutionTooComplex` when the search goes deeper than the depth limit.
    """
    object_filters = {t for t, r in filters if not r}
    userset_filters = {(t, r) for t, r in filters if r}
    found: set[str] = set()
    best: dict[Node, int] = {}
    stack: list[tuple[str, str, int]] = [(obj, relation, 0)]
    while stack:
        o, r, depth = stack.pop()
        if depth >= MAX_RESOLUTION_DEPTH:
            raise ResolutionTooComplex
        if best.get((o, r), MAX_RESOLUTION_DEPTH) <= depth:
            continue
        best[(o, r)] = depth
        o_type = o.partition(":")[0]
        if (o_type, r) in userset_filters:
            found.add(f"{o}#{r}")
        rel = ts.types[o_type][r]
        for node in walk(rel.rewrite, include_subtract=False):
            if isinstance(node, This):
                for t in source.by_object(o, r):
                    user_object, _, user_relation = t.user.partition("#")
                    user_type = user_object.partition(":")[0]
                    if user_relation:
                        if (user_type, user_relation) in rel.userset_conditions:
                            stack.append((user_object, user_relation, depth + 1))
                    elif user_type in object_filters and (
                        user_type in rel.wildcard_conditions
                        if user_object.endswith(":*")
                        else user_type in rel.object_conditions
                    ):
                        found.add(user_object)
            elif isinstance(node, Computed):
                stack.append((o, node.relation, depth + 1))
            elif isinstance(node, TupleToUserset):
                stack.extend(
                    (t.user, node.relation, depth + 1)
                    for t in source.by_object(o, node.tupleset)
                    if "#" not in t.user and ts.has_relation(t.user_type, node.relation)
                )
    return found
