"""Check, compiled: every relation's rewrite becomes a tree of closures, built once per model.

A resolver answers ``True`` (allowed), ``False`` (not allowed) or ``None`` (not allowed because a
cycle was met on the path: OpenFGA's ``cycle_detected``, which makes a ``but not`` operand false
rather than true). The user of a request never changes during a resolution, so everything about
it is parsed once into :class:`Request`; the closures read tuples through the request's
:class:`~bastion.authz.tuples.TupleSource` and allocate nothing on the hot path but the
snapshots the index hands out.

OpenFGA's reducers, reproduced exactly (errors are :class:`AuthzError` exceptions):

- union: true if any operand is true; else the error of a failed operand; else false;
- intersection: false if any operand is false; else the error; else true;
- difference: false if the base is false or the subtracted operand true (a cycle on either side
  counts as that); else an error of either side; else true.

Every dispatch (computed relation, userset, tuple-to-userset) adds one to the depth; reaching
:data:`MAX_RESOLUTION_DEPTH` raises :class:`ResolutionTooComplex` (2002).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from bastion.authz.conditions import CompiledCondition
from bastion.authz.engine._rewrites import (
    Computed,
    Difference,
    Intersection,
    Rewrite,
    This,
    TupleToUserset,
    Union,
)
from bastion.authz.engine._search import UNSURE, Plan, closure, compile_plans, search
from bastion.authz.engine._typesystem import Relation, TypeSystem
from bastion.authz.errors import AuthzError, ResolutionTooComplex
from bastion.authz.tuples import MemoryTupleIndex, Tuple, TupleSource

__all__ = [
    "MAX_RESOLUTION_DEPTH",
    "Request",
    "Resolver",
    "compile_resolvers",
    "compile_search_plans",
    "resolve_request",
]

#: OpenFGA's default ``maxResolutionDepth``.
MAX_RESOLUTION_DEPTH = 25

Result = bool | None
Resolver = Callable[[str, "Request", int], Result]
#: A userset or parent seen in a tuple: the object to resolve on, the conditions allowed on
#: such tuples (None: the tuple never grants), and the resolver of the relation there.
_Entry = tuple[str, frozenset[str | None] | None, Resolver | None]


ParsedUser = tuple[str, str, str, str, bool, str, str]


def parse_user(user: str) -> ParsedUser:
    """``(user, object, relation, type, is_wildcard, reachability kind, type:*)`` of a user."""
    user_object, _, user_relation = user.partition("#")
    user_type, _, user_id = user_object.partition(":")
    kind = f"{user_type}#{user_relation}" if user_relation else user_type
    return (user, user_object, user_relation, user_type, user_id == "*", kind, user_type + ":*")


class Request:
    """The per-check state: the tuples, the parsed user, the request context, the path."""

    __slots__ = (
        "closures",
        "context",
        "kind",
        "memo",
        "source",
        "user",
        "user_object",
        "user_relation",
        "user_type",
        "visited",
        "wild",
        "wildcard",
    )

    def __init__(
        self,
        source: TupleSource,
        user: str,
        context: Mapping[str, Any] | None,
        parsed: ParsedUser | None = None,
        memo: dict[tuple[str, str], bool] | None = None,
    ) -> None:
        self.source = source
        self.context = context
        self.visited: set[tuple[str, str]] | None = None
        #: per nesting relation (see ``_nested``): the objects the user is in, at any depth;
        #: None turns that shortcut off (a memo shared with other requests, or a restart)
        self.closures: dict[str, set[str]] | None = {} if memo is None else None
        #: definite answers of sub-problems, shared by every check with the same user, tuples
        #: and context (ListObjects passes one to all its candidate checks)
        self.memo: dict[tuple[str, str], bool] | None = memo
        (
            self.user,
            self.user_object,
            self.user_relation,
            self.user_type,
            self.wild,
            #: the reachability key (see TypeSystem._compute_reachable)
            self.kind,
            self.wildcard,
        ) = parsed if parsed is not None else parse_user(user)


#: Per-resolver caches of parsed tuple users are cleared at this size (bounded memory).
_CACHE_LIMIT = 65_536


def compile_resolvers(ts: TypeSystem) -> dict[str, dict[str, Resolver]]:
    """Compile one resolver per (type, relation) of the model."""
    resolvers: dict[str, dict[str, Resolver]] = {t: {} for t in ts.types}
    for t, relations in ts.types.items():
        for name, relation in relations.items():
            body = _compile(relation.rewrite, relation, ts, resolvers)
            resolver = _entry(relation, body, memoize=_memoize(ts, relation))
            if _is_nesting(relation):
                resolver = _nested(relation, resolver)
            resolvers[t][name] = resolver
    return resolvers


class _Restart(Exception):
    """A nesting relation's shortcut cannot answer where it answered before in the request."""


def compile_search_plans(ts: TypeSystem) -> dict[str, dict[str, Plan]]:
    """The relations a whole check of can be answered by :func:`search` (see ``_search``)."""
    nesting = {
        (t, r) for t, rels in ts.types.items() for r, rel in rels.items() if _is_nesting(rel)
    }
    return compile_plans(ts, nesting)


def resolve_request(resolve: Resolver, obj: str, req: Request, plan: Plan | None = None) -> Result:
    """``resolve(obj, req, 0)``; evaluated again without the nesting shortcut when it cannot
    stay exact for the whole request (see :func:`_nested`). With a ``plan``, a plain user and
    the in-memory index, :func:`search` answers first where it can tell."""
    closures = req.closures
    source = req.source
    if (
        plan is not None
        and closures is not None
        and type(source) is MemoryTupleIndex
        and not req.user_relation
        and not req.wild
    ):
        found = search(plan, obj, req.user, req.user_type, req.wildcard, source, closures)
        if found != UNSURE:
            return found == 1
    try:
        return resolve(obj, req, 0)
    except _Restart:
        req.closures = None
        req.memo = None
        req.visited = None
        return resolve(obj, req, 0)


def _is_nesting(relation: Relation) -> bool:
    """The self-nesting shape ``define member: [user, team#member]`` (directly assigned
    objects and the relation itself on the same type, nothing else, no conditions)."""
    none = frozenset({None})
    return (
        isinstance(relation.rewrite, This)
        and relation.userset_conditions == {(relation.type, relation.name): none}
        and not relation.wildcard_conditions
        and bool(relation.object_conditions)
        and all(allowed == none for allowed in relation.object_conditions.values())
    )


def _nested(relation: Relation, downward: Resolver) -> Resolver:
    """A nesting relation (see :func:`_is_nesting`) answered from the user's side, as
    OpenFGA's recursive fast path does: the objects the user is in at any depth, found
    upwards from the user's own tuples once per request, instead of a walk down every
    object nested below ``obj`` (a denied check walks all of them).

    Exact only where the downward walk could meet neither a cycle (``None``) nor the depth
    limit (2002): the nesting graph below ``obj`` is acyclic and its longest chain ends within
    the limit (the index's :meth:`~MemoryTupleIndex.nesting_heights`). Otherwise, for users
    that are usersets or wildcards, user types not assigned directly, and contextual tuples
    (another source), the downward walk answers. That walk's memo (definite answers of the
    objects it went through) can spare a later, deeper walk the depth limit; the shortcut
    leaves no such memo, so a walk needed after a shortcut's answer restarts the whole request
    without the shortcut (:func:`resolve_request`), and requests sharing a memo
    (ListObjects) never take it."""
    name = relation.name
    otype = relation.type
    direct_types = relation.object_conditions
    key = otype + "#" + name

    def nested(obj: str, req: Request, depth: int) -> Result:
        source = req.source
        closures = req.closures
        if (
            closures is not None
            and type(source) is MemoryTupleIndex
            and not req.user_relation
            and not req.wild
            and req.user_type in direct_types
        ):
            if depth >= MAX_RESOLUTION_DEPTH:
                raise ResolutionTooComplex
            heights = source.nesting_heights(otype, name)
            if heights is not None and depth + heights.get(obj, 0) < MAX_RESOLUTION_DEPTH:
                found = closures.get(key)
                if found is None:
                    found = closures[key] = closure(source, otype, name, req.user)
                return obj in found
            if closures:
                raise _Restart
        return downward(obj, req, depth)

    return nested


def _is_leaf(relation: Relation) -> bool:
    """Direct assignment of objects and wildcards only: it dispatches nothing."""
    return isinstance(relation.rewrite, This) and not relation.userset_conditions


def _memoize(ts: TypeSystem, relation: Relation) -> bool:
    """Memoize unless every path below the relation is one step to a leaf (the RBAC shape
    ``[role#member]``, where a memo would cost more than it saves); a diamond-shaped graph of
    usersets therefore never makes a check exponential."""
    if not isinstance(relation.rewrite, This) or relation.cyclic:
        return True
    return not all(_is_leaf(ts.types[t][r]) for t, r in relation.userset_conditions)


def _entry(relation: Relation, body: Resolver, *, memoize: bool) -> Resolver:
    """Wrap a relation's rewrite with OpenFGA's per-dispatch steps (depth, cycle, self, path).

    A relation that can dispatch memoizes its definite answers per request (``True``/``False``
    never depend on the path; only a cycle's ``None`` does, and is not kept), which turns nested
    folder chains from quadratic into linear work and bounds diamond-shaped graphs.
    """
    name = relation.name
    reachable = relation.reachable
    cyclic = relation.cyclic

    def resolve_full(obj: str, req: Request, depth: int) -> Result:  # noqa: PLR0912 - hot path
        if depth >= MAX_RESOLUTION_DEPTH:
            raise ResolutionTooComplex
        key = (obj, name)
        visited = req.visited
        if cyclic:
            if visited is None:
                visited = req.visited = set()
            elif key in visited:
                return None
        if req.user_relation == name and req.user_object == obj:
            return True
        if req.kind not in reachable:
            return False
        memo = req.memo
        if memo is None:
            memo = req.memo = {}
        else:
            known = memo.get(key)
            if known is not None:
                return known
        if visited is not None and cyclic:
            visited.add(key)
            try:
                result = body(obj, req, depth)
            finally:
                visited.discard(key)
        else:
            result = body(obj, req, depth)
        if result is not None:
            memo[key] = result
        return result

    if memoize or cyclic:
        return resolve_full

    def resolve(obj: str, req: Request, depth: int) -> Result:
        if depth >= MAX_RESOLUTION_DEPTH:
            raise ResolutionTooComplex
        if req.user_relation == name and req.user_object == obj:
            return True
        if req.kind not in reachable:
            return False
        return body(obj, req, depth)

    return resolve


def _compile(
    node: Rewrite,
    relation: Relation,
    ts: TypeSystem,
    resolvers: dict[str, dict[str, Resolver]],
) -> Resolver:
    if isinstance(node, This):
        return _direct(relation, ts.conditions, resolvers)
    if isinstance(node, Computed):
        return _computed(node.relation, resolvers[relation.type])
    if isinstance(node, TupleToUserset):
        return _tuple_to_userset(node, relation, ts, resolvers)
    if isinstance(node, Union):
        return _union([_compile(c, relation, ts, resolvers) for c in node.children])
    if isinstance(node, Intersection):
        return _intersection([_compile(c, relation, ts, resolvers) for c in node.children])
    if not isinstance(node, Difference):  # the Rewrite kinds are closed
        raise TypeError(f"unknown rewrite {node!r}")
    return _difference(
        _compile(node.base, relation, ts, resolvers),
        _compile(node.subtract, relation, ts, resolvers),
    )


def condition_holds(
    t: Tuple, conditions: Mapping[str, CompiledCondition], context: Mapping[str, Any] | None
) -> bool:
    """Evaluate a tuple's condition (true without one); raises ConditionError."""
    if t.condition is None:
        return True
    return conditions[t.condition].evaluate(t.context, context)


def _direct(  # noqa: PLR0915 - the hot path is inlined on purpose (no helper calls per check)
    relation: Relation,
    conditions: Mapping[str, CompiledCondition],
    resolvers: dict[str, dict[str, Resolver]],
) -> Resolver:
    name = relation.name
    object_conditions = relation.object_conditions
    wildcard_conditions = relation.wildcard_conditions
    userset_conditions = relation.userset_conditions

    cache: dict[str, _Entry] = {}

    def userset_entry(user: str) -> _Entry:
        user_object, _, user_relation = user.partition("#")
        user_type = user_object.partition(":")[0]
        allowed = userset_conditions.get((user_type, user_relation))
        resolve = resolvers.get(user_type, {}).get(user_relation)
        entry = (user_object, allowed if resolve is not None else None, resolve)
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[user] = entry
        return entry

    def direct(obj: str, req: Request, depth: int) -> Result:  # noqa: PLR0912 - see above
        source = req.source
        error: AuthzError | None = None
        cycle = False
        if req.user_relation:
            allowed = userset_conditions.get((req.user_type, req.user_relation))
            if allowed is not None:
                t = source.get(obj, name, req.user)
                if t is not None and t.condition in allowed:
                    try:
                        if condition_holds(t, conditions, req.context):
                            return True
                    except AuthzError as e:
                        error = e
        else:
            user_type = req.user_type
            if not req.wild:
                allowed = object_conditions.get(user_type)
                if allowed is not None:
                    t = source.get(obj, name, req.user)
                    if t is not None and t.condition in allowed:
                        if t.condition is None:
                            return True
                        try:
                            if condition_holds(t, conditions, req.context):
                                return True
                        except AuthzError as e:
                            error = e
            allowed = wildcard_conditions.get(user_type)
            if allowed is not None:
                t = source.get(obj, name, req.wildcard)
                if t is not None and t.condition in allowed:
                    try:
                        if condition_holds(t, conditions, req.context):
                            return True
                    except AuthzError as e:
                        error = e
        if userset_conditions:
            result, failure = _through(
                source.usersets(obj, name), cache, userset_entry, conditions, req, depth
            )
            if result:
                return True
            cycle = cycle or result is None
            if failure is not None:
                error = failure
        if error is not None:
            raise error
        return None if cycle else False

    return direct


def _computed(target: str, same_type: dict[str, Resolver]) -> Resolver:
    def computed(obj: str, req: Request, depth: int) -> Result:
        return same_type[target](obj, req, depth + 1)

    return computed


def _tuple_to_userset(
    node: TupleToUserset,
    relation: Relation,
    ts: TypeSystem,
    resolvers: dict[str, dict[str, Resolver]],
) -> Resolver:
    tupleset_name = node.tupleset
    target = node.relation
    tupleset = ts.types[relation.type].get(tupleset_name)
    allowed_types = tupleset.object_conditions if tupleset is not None else {}
    conditions = ts.conditions

    cache: dict[str, _Entry] = {}

    def parent_entry(parent: str) -> _Entry:
        parent_type, _, parent_id = parent.partition(":")
        allowed = allowed_types.get(parent_type)
        resolve = resolvers[parent_type].get(target) if parent_type in resolvers else None
        if "#" in parent or parent_id == "*" or resolve is None:
            allowed = None
        entry = (parent, allowed, resolve)
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[parent] = entry
        return entry

    def tuple_to_userset(obj: str, req: Request, depth: int) -> Result:
        tuples = req.source.by_object(obj, tupleset_name)
        result, error = _through(tuples, cache, parent_entry, conditions, req, depth)
        if result or error is None:
            return result
        raise error

    return tuple_to_userset


def _through(  # noqa: PLR0917 - positional on the hot path (keywords cost per call)
    tuples: Iterable[Tuple],
    cache: dict[str, _Entry],
    make_entry: Callable[[str], _Entry],
    conditions: Mapping[str, CompiledCondition],
    req: Request,
    depth: int,
) -> tuple[Result, AuthzError | None]:
    """Whether one of ``tuples`` grants through the object it names (a userset's object, or
    the parent of a tuple-to-userset), resolved one level deeper: True at the first that does;
    else None if a cycle was met, False otherwise, with the last error met (the caller raises
    it unless something else grants)."""
    error: AuthzError | None = None
    cycle = False
    for t in tuples:
        entry = cache.get(t.user)
        if entry is None:
            entry = make_entry(t.user)
        target, allowed, resolve = entry
        if allowed is None or t.condition not in allowed:
            continue
        try:
            if t.condition is not None and not condition_holds(t, conditions, req.context):
                continue
            result = resolve(target, req, depth + 1)  # type: ignore[misc]
        except AuthzError as e:
            error = e
            continue
        if result:
            return True, None
        if result is None:
            cycle = True
    return (None if cycle else False), error


def _union(children: list[Resolver]) -> Resolver:
    def union(obj: str, req: Request, depth: int) -> Result:
        error: AuthzError | None = None
        cycle = False
        for child in children:
            try:
                result = child(obj, req, depth)
            except AuthzError as e:
                error = e
                continue
            if result:
                return True
            if result is None:
                cycle = True
        if error is not None:
            raise error
        return None if cycle else False

    return union


def _intersection(children: list[Resolver]) -> Resolver:
    def intersection(obj: str, req: Request, depth: int) -> Result:
        error: AuthzError | None = None
        for child in children:
            try:
                result = child(obj, req, depth)
            except AuthzError as e:
                error = e if error is None else error
                continue
            if not result:
                return result
        if error is not None:
            raise error
        return True

    return intersection


def _difference(base: Resolver, subtract: Resolver) -> Resolver:
    def difference(obj: str, req: Request, depth: int) -> Result:
        base_error: AuthzError | None = None
        try:
            result = base(obj, req, depth)
        except AuthzError as e:
            base_error = e
        else:
            if not result:
                return result
        try:
            removed = subtract(obj, req, depth)
        except AuthzError:
            if base_error is not None:
                raise base_error from None
            raise
        if removed:
            return False
        if removed is None:
            return None
        if base_error is not None:
            raise base_error
        return True

    return difference
