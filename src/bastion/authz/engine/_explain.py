"""Expand (OpenFGA's userset tree, one level) and Explain (why a check is true or false).

Explain re-runs a check with an interpreter that records every step: the relation node, the
rewrite applied, the tuples read and each operand's outcome. It follows exactly the semantics of
the compiled resolvers in ``_check`` (same reducers, depth limit, cycle rule, conditions), only
slower; it is for humans and the decision log, not the hot path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bastion.authz.engine._check import MAX_RESOLUTION_DEPTH, Request, condition_holds
from bastion.authz.engine._rewrites import (
    Computed,
    Difference,
    Intersection,
    Rewrite,
    This,
    TupleToUserset,
    Union,
)
from bastion.authz.engine._typesystem import Relation, TypeSystem
from bastion.authz.errors import AuthzError, ResolutionTooComplex
from bastion.authz.tuples import TupleSource

__all__ = ["MAX_EXPLAIN_STEPS", "Explanation", "Step", "expand_tree", "explain"]

ALLOWED, DENIED, CYCLE, ERROR = "allowed", "denied", "cycle", "error"


@dataclass(frozen=True, slots=True)
class Step:
    """One node of an explanation: what was evaluated, its outcome and why."""

    node: str  # "document:1#viewer" or a rewrite label under it
    rule: str  # direct, computed, tuple_to_userset, union, intersection, difference, relation
    outcome: str  # allowed, denied, cycle, error
    reason: str = ""
    tuple_key: str | None = None
    children: tuple[Step, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        out: dict[str, Any] = {"node": self.node, "rule": self.rule, "outcome": self.outcome}
        if self.reason:
            out["reason"] = self.reason
        if self.tuple_key is not None:
            out["tuple"] = self.tuple_key
        if self.children:
            out["children"] = [c.as_dict() for c in self.children]
        return out


@dataclass(frozen=True, slots=True)
class Explanation:
    """The outcome of a check with the tree of steps behind it."""

    allowed: bool
    root: Step

    def path(self) -> list[str]:
        """The tuples that made the check true, outermost first; empty when it is false."""
        if not self.allowed:
            return []
        found: list[str] = []
        step: Step | None = self.root
        while step is not None:
            if step.tuple_key is not None:
                found.append(step.tuple_key)
            step = next((c for c in step.children if c.outcome == ALLOWED), None)
        return found

    def as_dict(self) -> dict[str, Any]:
        return {"allowed": self.allowed, "tree": self.root.as_dict()}


def explain(ts: TypeSystem, req: Request, obj: str, relation: str) -> Explanation:
    """Evaluate ``obj#relation@req.user`` recording every step."""
    step = _Explainer(ts, req).resolve(obj, relation, 0)
    return Explanation(allowed=step.outcome == ALLOWED, root=step)


#: An explanation records every step (it does not memoize, to show each path), so a hostile
#: diamond-shaped model could make it exponential: past this many steps it stops (2002).
MAX_EXPLAIN_STEPS = 10_000


class _Explainer:
    def __init__(self, ts: TypeSystem, req: Request) -> None:
        self.ts = ts
        self.req = req
        self.visited: set[tuple[str, str]] = set()
        self.steps = 0

    def resolve(self, obj: str, name: str, depth: int) -> Step:
        self.steps += 1
        if self.steps > MAX_EXPLAIN_STEPS:
            raise ResolutionTooComplex(f"an explanation is limited to {MAX_EXPLAIN_STEPS} steps")
        node = f"{obj}#{name}"
        req = self.req
        if depth >= MAX_RESOLUTION_DEPTH:
            return Step(node, "relation", ERROR, ResolutionTooComplex.title)
        key = (obj, name)
        if key in self.visited:
            return Step(node, "relation", CYCLE, "cycle: this relation is already on the path")
        if req.user_relation == name and req.user_object == obj:
            return Step(node, "relation", ALLOWED, "the user is this userset itself")
        relation = self.ts.types[obj.partition(":")[0]][name]
        if req.kind not in relation.reachable:
            return Step(node, "relation", DENIED, f"no path from '{req.kind}' to this relation")
        self.visited.add(key)
        try:
            inner = self.rewrite(relation.rewrite, relation, obj, depth)
        finally:
            self.visited.discard(key)
        return Step(node, "relation", inner.outcome, inner.reason, None, (inner,))

    def rewrite(self, node: Rewrite, relation: Relation, obj: str, depth: int) -> Step:
        label = f"{obj}#{relation.name}"
        if isinstance(node, This):
            return self.direct(relation, obj, depth)
        if isinstance(node, Computed):
            child = self.resolve(obj, node.relation, depth + 1)
            return Step(
                label, "computed", child.outcome, f"via {obj}#{node.relation}", None, (child,)
            )
        if isinstance(node, TupleToUserset):
            return self.tuple_to_userset(node, relation, obj, depth)
        if isinstance(node, Union):
            steps = [self.rewrite(c, relation, obj, depth) for c in node.children]
            return Step(label, "union", _union(steps), "", None, tuple(steps))
        if isinstance(node, Intersection):
            steps = [self.rewrite(c, relation, obj, depth) for c in node.children]
            return Step(label, "intersection", _intersection(steps), "", None, tuple(steps))
        if not isinstance(node, Difference):  # the Rewrite kinds are closed
            raise TypeError(f"unknown rewrite {node!r}")
        base = self.rewrite(node.base, relation, obj, depth)
        subtract = self.rewrite(node.subtract, relation, obj, depth)
        outcome, reason = _difference(base, subtract)
        return Step(label, "difference", outcome, reason, None, (base, subtract))

    def _condition(self, t: Any) -> tuple[str, str]:
        try:
            held = condition_holds(t, self.ts.conditions, self.req.context)
        except AuthzError as error:
            return ERROR, error.detail
        if held:
            return ALLOWED, f"condition '{t.condition}' holds" if t.condition else ""
        return DENIED, f"condition '{t.condition}' is false"

    def direct(self, relation: Relation, obj: str, depth: int) -> Step:
        req = self.req
        label = f"{obj}#{relation.name}"
        steps: list[Step] = []
        candidates: list[tuple[str, Mapping[Any, frozenset[str | None]]]] = []
        if req.user_relation:
            if (req.user_type, req.user_relation) in relation.userset_conditions:
                candidates.append((req.user, relation.userset_conditions))
        else:
            if not req.wild and req.user_type in relation.object_conditions:
                candidates.append((req.user, relation.object_conditions))
            if req.user_type in relation.wildcard_conditions:
                candidates.append((f"{req.user_type}:*", relation.wildcard_conditions))
        for user, table in candidates:
            t = req.source.get(obj, relation.name, user)
            if t is None:
                continue
            key: Any = (req.user_type, req.user_relation) if req.user_relation else req.user_type
            if t.condition not in table[key]:
                steps.append(Step(label, "direct", DENIED, "tuple invalid for the model", str(t)))
                continue
            outcome, reason = self._condition(t)
            steps.append(Step(label, "direct", outcome, reason, str(t)))
        for t in req.source.usersets(obj, relation.name):
            user_object, _, user_relation = t.user.partition("#")
            user_type = user_object.partition(":")[0]
            allowed = relation.userset_conditions.get((user_type, user_relation))
            if allowed is None or t.condition not in allowed:
                continue
            outcome, reason = self._condition(t)
            if outcome != ALLOWED:
                steps.append(Step(label, "userset", outcome, reason, str(t)))
                continue
            child = self.resolve(user_object, user_relation, depth + 1)
            steps.append(Step(label, "userset", child.outcome, reason, str(t), (child,)))
        if not steps:
            return Step(label, "direct", DENIED, "no matching tuple")
        return Step(label, "direct", _union(steps), "", None, tuple(steps))

    def tuple_to_userset(
        self, node: TupleToUserset, relation: Relation, obj: str, depth: int
    ) -> Step:
        label = f"{obj}#{relation.name}"
        tupleset = self.ts.types[relation.type].get(node.tupleset)
        allowed_types = tupleset.object_conditions if tupleset is not None else {}
        steps: list[Step] = []
        for t in self.req.source.by_object(obj, node.tupleset):
            parent_type, _, parent_id = t.user.partition(":")
            allowed = allowed_types.get(parent_type)
            if allowed is None or t.condition not in allowed or "#" in t.user or parent_id == "*":
                continue
            if not self.ts.has_relation(parent_type, node.relation):
                continue
            outcome, reason = self._condition(t)
            if outcome != ALLOWED:
                steps.append(Step(label, "tuple_to_userset", outcome, reason, str(t)))
                continue
            child = self.resolve(t.user, node.relation, depth + 1)
            steps.append(Step(label, "tuple_to_userset", child.outcome, reason, str(t), (child,)))
        if not steps:
            reason = f"no '{node.tupleset}' tuple on {obj}"
            return Step(label, "tuple_to_userset", DENIED, reason)
        return Step(label, "tuple_to_userset", _union(steps), "", None, tuple(steps))


def _union(steps: list[Step]) -> str:
    outcomes = {s.outcome for s in steps}
    for outcome in (ALLOWED, ERROR, CYCLE):
        if outcome in outcomes:
            return outcome
    return DENIED


def _intersection(steps: list[Step]) -> str:
    for step in steps:
        if step.outcome in {DENIED, CYCLE}:
            return step.outcome
    return ERROR if any(s.outcome == ERROR for s in steps) else ALLOWED


def _difference(base: Step, subtract: Step) -> tuple[str, str]:
    if base.outcome in {DENIED, CYCLE}:
        return base.outcome, "the base is not granted"
    if subtract.outcome == ALLOWED:
        return DENIED, "excluded by the subtracted relation"
    if subtract.outcome == CYCLE:
        return CYCLE, "the subtracted relation has a cycle"
    if ERROR in {base.outcome, subtract.outcome}:
        return ERROR, "an operand failed"
    return ALLOWED, ""


# ---------------------------------------------------------------------------- expand
def expand_tree(ts: TypeSystem, source: TupleSource, obj: str, relation: str) -> dict[str, Any]:
    """OpenFGA's Expand: the userset tree of ``obj#relation``, one level deep."""
    rel = ts.types[obj.partition(":")[0]][relation]
    return {"root": _expand(ts, source, rel.rewrite, rel, obj)}


def _expand(
    ts: TypeSystem, source: TupleSource, node: Rewrite, rel: Relation, obj: str
) -> dict[str, Any]:
    name = f"{obj}#{rel.name}"
    if isinstance(node, This):
        users = [t.user for t in source.by_object(obj, rel.name) if ts.is_valid_for_read(t)]
        return {"name": name, "leaf": {"users": {"users": users}}}
    if isinstance(node, Computed):
        return {"name": name, "leaf": {"computed": {"userset": f"{obj}#{node.relation}"}}}
    if isinstance(node, TupleToUserset):
        computed = []
        for t in source.by_object(obj, node.tupleset):
            if not ts.is_valid_for_read(t):
                continue
            if ts.has_relation(t.user_type, node.relation):
                computed.append({"userset": f"{t.user}#{node.relation}"})
        tupleset = {"tupleset": f"{obj}#{node.tupleset}", "computed": computed}
        return {"name": name, "leaf": {"tupleToUserset": tupleset}}
    if isinstance(node, Union | Intersection):
        kind = "union" if isinstance(node, Union) else "intersection"
        nodes = [_expand(ts, source, c, rel, obj) for c in node.children]
        return {"name": name, kind: {"nodes": nodes}}
    if not isinstance(node, Difference):  # the Rewrite kinds are closed
        raise TypeError(f"unknown rewrite {node!r}")
    return {
        "name": name,
        "difference": {
            "base": _expand(ts, source, node.base, rel, obj),
            "subtract": _expand(ts, source, node.subtract, rel, obj),
        },
    }
