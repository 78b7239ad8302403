"""Candidate search for ListObjects and ListUsers.

Both work in two phases: a graph search over the tuples finds the candidates, then every
candidate is confirmed by a full Check (which evaluates conditions and ``but not`` exactly), so
nothing Check denies is listed.

- ListObjects (:class:`ReverseGraph`) searches backwards from the user for a *superset*: every
  operand of an intersection and the base of a difference are followed. OpenFGA's ListObjects
  also confirms such candidates by Check, so the answer is exactly the objects Check allows.
- ListUsers (:func:`forward_candidates`) computes OpenFGA's ListUsers sets instead: an
  intersection keeps only the users every operand reaches, a difference removes the
  subtracted ones, with OpenFGA's wildcard rules. A superset is not enough there: a user that
  Check allows only through a wildcard (``user:*``) is listed individually by OpenFGA only when
  a path of the set computation reaches her.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from bastion.authz.engine._check import MAX_RESOLUTION_DEPTH
from bastion.authz.engine._rewrites import (
    Computed,
    Difference,
    Intersection,
    Rewrite,
    This,
    TupleToUserset,
    Union,
    walk,
)
from bastion.authz.engine._typesystem import Relation, TypeSystem
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

    OpenFGA takes one filter; several are answered as the union of one search per filter.
    Raises :class:`ResolutionTooComplex` when the search goes deeper than the depth limit.
    """
    found: set[str] = set()
    for user_filter in dict.fromkeys(filters):
        found |= _UserSearch(ts, source, user_filter).candidates(obj, relation)
    return found


Users = frozenset[str]
_NOTHING: Users = frozenset()
#: users found with a relationship, users found explicitly without one (OpenFGA's
#: ``NoRelationship``, out of a ``but not``), cycle met, height below, lowest path position cut
_Expansion = tuple[Users, Users, bool, int, int]


class _UserSearch:
    """OpenFGA's ListUsers as set operations over the tuples (``expand`` in its
    ``list_users_rpc.go``): a union joins its operands' users, an intersection keeps the users
    every operand reaches and a difference removes the subtracted users, with OpenFGA's
    wildcard rules (:func:`_intersect`, :func:`_exclude`). A user reached only through one
    operand of an ``and`` is therefore no candidate, even when Check allows her by another path
    (a wildcard), as OpenFGA does not list her.

    Conditions are not evaluated here (Check does it): a conditional tuple counts as present
    except on the subtracted side of a ``but not``, where it counts as absent (the ``lower``
    bound), so the candidates stay a superset of the answer.

    Cycles are cut per path like OpenFGA (a node already on the path adds nothing, and a cut in
    the subtracted operand of a ``but not`` empties it). A node's users are remembered unless
    they depend on a cut made by a node above it, so a diamond-shaped graph is not explored
    once per path; the remembered height keeps OpenFGA's per-path depth limit exact.
    """

    __slots__ = ("_memo", "_object_type", "_on_path", "_source", "_ts", "_userset", "_wildcard")

    def __init__(self, ts: TypeSystem, source: TupleSource, user_filter: tuple[str, str]):
        self._ts = ts
        self._source = source
        filter_type, filter_relation = user_filter
        self._object_type = "" if filter_relation else filter_type
        self._userset = user_filter if filter_relation else None
        self._wildcard = "" if filter_relation else f"{filter_type}:*"
        #: (object, relation, lower) -> (has, has not, cycle met, height below the node)
        self._memo: dict[tuple[str, str, bool], tuple[Users, Users, bool, int]] = {}
        #: nodes on the current path -> their position on it
        self._on_path: dict[tuple[str, str], int] = {}

    def candidates(self, obj: str, relation: str) -> set[str]:
        has, _, _, _, _ = self._expand(obj, relation, 0, lower=False)
        return set(has)

    def _expand(self, obj: str, relation: str, depth: int, *, lower: bool) -> _Expansion:
        """The users of ``obj#relation`` (one dispatch: depth, cycle, the node's userset)."""
        if depth >= MAX_RESOLUTION_DEPTH:
            raise ResolutionTooComplex
        key = (obj, relation)
        position = self._on_path.get(key)
        if position is not None:
            return _NOTHING, _NOTHING, True, 0, position
        known = self._memo.get((obj, relation, lower))
        if known is not None:
            has, has_not, cycle, height = known
            if depth + height >= MAX_RESOLUTION_DEPTH:
                raise ResolutionTooComplex
            return has, has_not, cycle, height, _NO_CUT
        here = len(self._on_path)
        self._on_path[key] = here
        try:
            obj_type = obj.partition(":")[0]
            rel = self._ts.types[obj_type][relation]
            has, has_not, cycle, height, cut = self._rewrite(
                rel.rewrite, obj, rel, depth, lower=lower
            )
        finally:
            del self._on_path[key]
        if (obj_type, relation) == self._userset:
            userset = f"{obj}#{relation}"
            has, has_not = has | {userset}, has_not - {userset}
        if cut >= here:  # no cut above this node: its users do not depend on the path
            self._memo[(obj, relation, lower)] = (has, has_not, cycle, height)
            cut = _NO_CUT
        return has, has_not, cycle, height, cut

    def _rewrite(
        self, node: Rewrite, obj: str, rel: Relation, depth: int, *, lower: bool
    ) -> _Expansion:
        if isinstance(node, This):
            return self._direct(obj, rel, depth, lower=lower)
        if isinstance(node, Computed):
            has, has_not, cycle, height, cut = self._expand(
                obj, node.relation, depth + 1, lower=lower
            )
            return has, has_not, cycle, height + 1, cut
        if isinstance(node, TupleToUserset):
            return self._tupleset(node, obj, depth, lower=lower)
        if isinstance(node, Difference):
            return self._difference(node, obj, rel, depth, lower=lower)
        operands = []
        height, cut = 0, _NO_CUT
        for child in node.children if isinstance(node, Union | Intersection) else ():
            has, _, _, below, at = self._rewrite(child, obj, rel, depth, lower=lower)
            operands.append(has)
            height, cut = max(height, below), min(cut, at)
        # Both drop the users found without a relationship.
        joined = frozenset().union(*operands) if isinstance(node, Union) else _intersect(operands)
        return joined, _NOTHING, False, height, cut

    def _direct(self, obj: str, rel: Relation, depth: int, *, lower: bool) -> _Expansion:
        has: set[str] = set()
        has_not: set[str] = set()
        cycle = False
        height, cut = 0, _NO_CUT
        for t in self._source.by_object(obj, rel.name):
            if lower and t.condition:
                continue
            user_object, _, user_relation = t.user.partition("#")
            user_type = user_object.partition(":")[0]
            if user_relation:
                if (user_type, user_relation) in rel.userset_conditions:
                    found, not_found, met, below, at = self._expand(
                        user_object, user_relation, depth + 1, lower=lower
                    )
                    has.update(found)
                    has_not.update(not_found)
                    cycle = cycle or met
                    height, cut = max(height, below + 1), min(cut, at)
            elif user_type == self._object_type and (
                user_type in rel.wildcard_conditions
                if user_object.endswith(":*")
                else user_type in rel.object_conditions
            ):
                has.add(user_object)
        return frozenset(has), frozenset(has_not - has), cycle, height, cut

    def _tupleset(self, node: TupleToUserset, obj: str, depth: int, *, lower: bool) -> _Expansion:
        has: set[str] = set()
        has_not: set[str] = set()
        height, cut = 0, _NO_CUT
        for t in self._source.by_object(obj, node.tupleset):
            if "#" in t.user or (lower and t.condition):
                continue
            if not self._ts.has_relation(t.user_type, node.relation):
                continue
            found, not_found, _, below, at = self._expand(
                t.user, node.relation, depth + 1, lower=lower
            )
            has.update(found)
            has_not.update(not_found)
            height, cut = max(height, below + 1), min(cut, at)
        return frozenset(has), frozenset(has_not - has), False, height, cut

    def _difference(
        self, node: Difference, obj: str, rel: Relation, depth: int, *, lower: bool
    ) -> _Expansion:
        base, base_not, _, base_height, base_cut = self._rewrite(
            node.base, obj, rel, depth, lower=lower
        )
        # The subtracted side takes the other bound, so the difference stays a superset.
        subtracted, subtracted_not, cycle, height, cut = self._rewrite(
            node.subtract, obj, rel, depth, lower=not lower
        )
        height, cut = max(height, base_height), min(cut, base_cut)
        if cycle:  # OpenFGA: a cycle in the subtracted operand empties the difference
            return _NOTHING, _NOTHING, False, height, cut
        has, has_not = _exclude(base, base_not, subtracted, subtracted_not, self._wildcard)
        return has, has_not, False, height, cut


_NO_CUT = MAX_RESOLUTION_DEPTH + 1


def _intersect(operands: list[Users]) -> Users:
    """OpenFGA's intersection: a user ``type:id`` is kept when every operand has her or the
    wildcard ``type:*``; a wildcard or a userset only when every operand has it."""
    if not all(operands):
        return _NOTHING
    kept: set[str] = set()
    for user in frozenset[str]().union(*operands):
        if "#" in user or user.endswith(":*"):
            if all(user in users for users in operands):
                kept.add(user)
        else:
            wildcard = user.partition(":")[0] + ":*"
            if all(user in users or wildcard in users for users in operands):
                kept.add(user)
    return frozenset(kept)


def _exclude(
    base: Users, base_not: Users, subtracted: Users, subtracted_not: Users, wildcard: str
) -> tuple[Users, Users]:
    """OpenFGA's ``expandExclusion``: ``(has, has not)`` of ``base but not subtracted``.

    A base user is kept unless the subtracted side has her or the filter type's wildcard; a
    user the subtracted side found *without* a relationship (a ``but not`` inside it) is
    restored. When the base has the wildcard, every user the subtracted side names comes out,
    with the opposite status.
    """
    base_users = base | base_not
    subtracted_users = subtracted | subtracted_not
    if not base_users:
        return _NOTHING, _NOTHING
    if wildcard and wildcard in base_users:
        return _exclude_from_wildcard(base_users, subtracted_users, subtracted_not, wildcard)
    has: set[str] = set()
    has_not: set[str] = set()
    wildcard_subtracted = bool(wildcard) and wildcard in subtracted_users
    for user in base_users:
        if wildcard_subtracted or user in subtracted_users:
            (has if user in subtracted_not else has_not).add(user)
        else:
            (has if user in base else has_not).add(user)
    return frozenset(has), frozenset(has_not - has)


def _exclude_from_wildcard(
    base_users: Users, subtracted_users: Users, subtracted_not: Users, wildcard: str
) -> tuple[Users, Users]:
    """:func:`_exclude` when the base has the wildcard: each subtracted user comes out with
    the opposite status, the other base users keep a relationship unless the wildcard is
    subtracted (then they have none)."""
    has: set[str] = set()
    has_not: set[str] = set()
    any_wildcard = False
    for user in subtracted_users:
        if "#" not in user and user.endswith(":*"):
            any_wildcard = True
        elif user in subtracted_not:
            has.add(user)
        else:
            has_not.add(user)
    wildcard_subtracted = wildcard in subtracted_users
    for user in base_users - subtracted_users:
        if not wildcard_subtracted:
            has.add(user)
        if any_wildcard:
            has_not.add(user)
    return frozenset(has), frozenset(has_not - has)
