"""A whole check answered in one flat search, where the downward walk's answer cannot depend
on its order: the folder-chain shape (``viewer from parent``, ``editor``, ``[team#member]``).

The downward walk (:mod:`._check`) evaluates one relation of one object per call, with a
depth, a path for cycles and a memo. For a relation whose whole rewrite graph is unions of
direct assignment, computed relations and tuple-to-usersets, with no condition allowed on any
tuple, a plain user and the in-memory index, its answer is plain reachability unless a cycle
or the depth limit is met:

- if some simple path of the graph of (object, relation) nodes leads, within the depth limit,
  to a node that grants directly, the walk answers True (a union never lets an error or a
  cycle hide a true operand, and a memoized False means nothing below grants at any depth);
- if no node grants, the graph is acyclic and its longest path (with the nesting heights of
  the teams at its leaves) stays within the limit, the walk meets neither a cycle nor 2002 and
  answers False.

:func:`search` explores the graph once, iteratively, and answers in those two cases only; in
any other (a cycle, a path too deep, a nesting graph with a cycle) it answers ``UNSURE`` and
the check runs the downward walk from scratch, which is exact by construction.

Neither the graph below ``obj#relation`` (for the users of one type) nor a user's nesting
closure depends on anything but the tuples: both are kept in the index's ``_derived`` dict,
which every write to the index empties. A graph in the first case for every user (no cycle,
within the limit: :func:`_shape`) is kept flat, the nodes granting directly and the nesting
leaves, so a later check of any user of that type is a few lookups, not a walk.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from bastion.authz.engine._rewrites import Computed, Rewrite, This, TupleToUserset, Union
from bastion.authz.engine._typesystem import Relation, TypeSystem
from bastion.authz.tuples import MemoryTupleIndex

__all__ = ["UNSURE", "Plan", "closure", "compile_plans", "search"]

#: The search cannot tell; the downward walk must answer.
UNSURE = 2
#: OpenFGA's default ``maxResolutionDepth`` (the same as the walk's).
_LIMIT = 25
_NONE = frozenset({None})
_CACHE_LIMIT = 65_536

#: What the search keeps per index (``MemoryTupleIndex._derived``: the shapes of searched
#: graphs and the users' nesting closures) is dropped at this count (bounded memory; every
#: write to the index drops it too).
_SHAPE_LIMIT = 16_384

#: The node shapes kept below roots (:func:`_nodes`) are dropped at this count: 2 nodes
#: (``viewer``, ``editor``) per folder; each entry ~0.5 KB (its tuple dicts are the index's).
_NODE_LIMIT = 65_536
#: The key of that dict in ``_derived``.
_NODES = object()

#: A graph met once since the last write (kept flat the second time).
_SEEN = object()

#: What :func:`search` needs of ``obj#root`` for any user of one type: the tuple dicts of the
#: nodes that grant that type directly, those granting its wildcard, the nesting leaves
#: ``(plan, object)`` whose holders are granted, and the longest path below ``obj#root``
#: (nesting heights included: what a graph composed above it adds to).
Shape = tuple[
    tuple[dict[str, Any], ...],
    tuple[dict[str, Any], ...],
    tuple[tuple["Plan", str], ...],
    int,
]


class Plan:
    """One relation of one type, ready for :func:`search` (see the module docstring)."""

    __slots__ = (
        "computed",
        "key",
        "name",
        "nesting",
        "object_types",
        "reachable",
        "suffix",
        "targets",
        "ttus",
        "type",
        "usersets",
        "wildcard_types",
    )

    def __init__(self, relation: Relation, nesting: bool) -> None:
        self.type = relation.type
        self.name = relation.name
        self.key = relation.type + "#" + relation.name
        self.suffix = "#" + relation.name
        self.nesting = nesting
        self.reachable = relation.reachable
        self.object_types = frozenset(relation.object_conditions)
        self.wildcard_types = frozenset(relation.wildcard_conditions)
        self.computed: tuple[Plan, ...] = ()
        #: (tupleset, {parent type: plan of the target relation there}, parsed parents)
        self.ttus: tuple[tuple[str, dict[str, Plan], dict[str, tuple[str, Plan] | None]], ...] = ()
        #: (user type, relation) of a userset tuple -> the plan there
        self.usersets: dict[tuple[str, str], Plan] = {}
        #: per tuple user string: the object and plan it leads to (None: it never grants)
        self.targets: dict[str, tuple[str, Plan] | None] = {}


def _terms(node: Rewrite) -> list[Rewrite] | None:
    """The operands of a union tree, or None when it holds anything but unions of
    direct assignment, computed relations and tuple-to-usersets."""
    if isinstance(node, This | Computed | TupleToUserset):
        return [node]
    if isinstance(node, Union):
        out: list[Rewrite] = []
        for child in node.children:
            terms = _terms(child)
            if terms is None:
                return None
            out += terms
        return out
    return None


def _unconditioned(tables: Iterable[frozenset[str | None]]) -> bool:
    return all(allowed == _NONE for allowed in tables)


def _link(
    ts: TypeSystem,
    plans: dict[tuple[str, str], Plan],
    plan: Plan,
    terms: list[Rewrite],
    out: set[tuple[str, str]],
) -> bool:
    """Fill ``plan``'s computed, tuple-to-userset and userset steps (and ``out``, the
    relations they lead to); False when a tupleset allows a condition."""
    relation = ts.types[plan.type][plan.name]
    computed: list[Plan] = []
    ttus: list[tuple[str, dict[str, Plan], dict[str, tuple[str, Plan] | None]]] = []
    unconditioned = True
    for term in terms:
        if isinstance(term, This):
            for user_key in relation.userset_conditions:
                if user_key in plans:
                    plan.usersets[user_key] = plans[user_key]
                    out.add(user_key)
        elif isinstance(term, Computed):
            computed.append(plans[(plan.type, term.relation)])
            out.add((plan.type, term.relation))
        elif isinstance(term, TupleToUserset):
            tupleset = ts.types[plan.type].get(term.tupleset)
            allowed = tupleset.object_conditions if tupleset is not None else {}
            unconditioned = unconditioned and _unconditioned(allowed.values())
            parents = {p: plans[(p, term.relation)] for p in allowed if (p, term.relation) in plans}
            out.update((p, term.relation) for p in parents)
            ttus.append((term.tupleset, parents, {}))
    plan.computed = tuple(computed)
    plan.ttus = tuple(ttus)
    return unconditioned


def compile_plans(ts: TypeSystem, nesting: set[tuple[str, str]]) -> dict[str, dict[str, Plan]]:
    """A plan per (type, relation) whose rewrite graph :func:`search` can answer; the others
    (an intersection, a difference or a condition anywhere below) are left out."""
    plans = {
        (t, r): Plan(relation, (t, r) in nesting)
        for t, relations in ts.types.items()
        for r, relation in relations.items()
    }
    edges: dict[tuple[str, str], set[tuple[str, str]]] = {}
    bad: set[tuple[str, str]] = set()
    for (t, r), plan in plans.items():
        relation = ts.types[t][r]
        out = edges[(t, r)] = set()
        if plan.nesting:
            continue  # answered by the user's nesting closure
        terms = _terms(relation.rewrite)
        if terms is None or not _unconditioned(
            [
                *relation.object_conditions.values(),
                *relation.wildcard_conditions.values(),
                *relation.userset_conditions.values(),
            ]
        ):
            bad.add((t, r))
            continue
        if not _link(ts, plans, plan, terms, out):
            bad.add((t, r))
    changed = True
    while changed:  # a relation that leads to one the search cannot answer is left out too
        changed = False
        for node, out in edges.items():
            if node not in bad and out & bad:
                bad.add(node)
                changed = True
    result: dict[str, dict[str, Plan]] = {t: {} for t in ts.types}
    for (t, r), plan in plans.items():
        if (t, r) not in bad and not plan.nesting:
            result[t][r] = plan
    return result


def closure(source: MemoryTupleIndex, otype: str, name: str, user: str) -> set[str]:
    """The objects of ``otype`` whose nesting relation ``name`` holds ``user`` at any depth,
    through unconditioned tuples (found upwards with ``by_user``). Kept in the index's
    ``_derived`` dict (which every write empties): callers never modify it."""
    derived = source._derived  # noqa: SLF001
    key = (otype, name, user)
    kept = derived.get(key)
    if kept is not None:
        return cast("set[str]", kept)
    suffix = "#" + name
    found: set[str] = set()
    frontier = [user]
    # The reverse index read directly (``by_user`` without a call and a copy per step: the
    # dicts cannot change during the loop, which writes nothing to the index).
    by_user = source._by_user  # noqa: SLF001
    empty: dict[str, Any] = {}
    while frontier:
        current = frontier.pop()
        for t in by_user.get((otype, name, current), empty).values():
            if t.condition is None and t.object not in found:
                found.add(t.object)
                frontier.append(t.object + suffix)
    _keep(derived, key, found)
    return found


def _userset_target(plan: Plan, user: str) -> tuple[str, Plan] | None:
    """Where a userset tuple's user leads, as the walk's ``userset_entry`` reads it."""
    user_object, _, user_relation = user.partition("#")
    child = plan.usersets.get((user_object.partition(":")[0], user_relation))
    entry = (user_object, child) if child is not None else None
    if len(plan.targets) >= _CACHE_LIMIT:
        plan.targets.clear()
    plan.targets[user] = entry
    return entry


def _parent_target(
    parents: dict[str, Plan], cache: dict[str, tuple[str, Plan] | None], parent: str
) -> tuple[str, Plan] | None:
    """Where a tupleset tuple's user leads, as the walk's ``parent_entry`` reads it."""
    parent_type, _, parent_id = parent.partition(":")
    child = parents.get(parent_type)
    entry = None if "#" in parent or parent_id == "*" or child is None else (parent, child)
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[parent] = entry
    return entry


def _leads(
    plan: Plan, obj: str, rels: dict[str, Any], usersets: dict[str, Any]
) -> list[tuple[str, Plan]]:
    """The nodes below ``plan`` on ``obj``: its computed relations on the same object, the
    usersets granted on it (``usersets``: the index's usersets of ``obj``) and the parents its
    tuple-to-usersets point to (``rels``: the index's tuples of ``obj``); unconditioned tuples
    only (a condition leaves the answer to the general walk). Shared by :func:`search` and
    :func:`_shape`, which must expand a node alike."""
    empty: dict[str, Any] = {}
    leads = [(obj, child) for child in plan.computed] if plan.computed else []
    if plan.usersets:
        targets = plan.targets
        for t in tuple(usersets.get(plan.name, empty).values()):
            if t.condition is None:
                target = targets.get(t.user, targets)
                if target is targets:
                    target = _userset_target(plan, t.user)
                if target is not None:
                    leads.append(target)  # type: ignore[arg-type]
    for tupleset, parents, cache in plan.ttus:
        for t in tuple(rels.get(tupleset, empty).values()):
            if t.condition is None:
                target = cache.get(t.user, cache)
                if target is cache:
                    target = _parent_target(parents, cache, t.user)
                if target is not None:
                    leads.append(target)  # type: ignore[arg-type]
    return leads


def _grants(
    shape: Shape, user: str, wildcard: str, index: MemoryTupleIndex, closures: dict[str, set[str]]
) -> int:
    """1 when a kept shape grants ``user`` (a plain user of its type), else 0."""
    directs, wilds, leaves, _ = shape
    for users in directs:
        t = users.get(user)
        if t is not None and t.condition is None:
            return 1
    for users in wilds:
        t = users.get(wildcard)
        if t is not None and t.condition is None:
            return 1
    for child, child_obj in leaves:
        found = closures.get(child.key)
        if found is None:
            found = closures[child.key] = closure(index, child.type, child.name, user)
        if child_obj in found:
            return 1
    return 0


def search(  # noqa: PLR0911, PLR0912, PLR0915, PLR0917 - one flat loop on the hot path
    root: Plan,
    obj: str,
    user: str,
    user_type: str,
    wildcard: str,
    index: MemoryTupleIndex,
    closures: dict[str, set[str]],
) -> int:
    """1 (allowed) or 0 (denied) as the downward walk answers ``obj#root@user`` for a plain
    user (not a userset, not a wildcard), or :data:`UNSURE`."""
    if user_type not in root.reachable:
        return 0
    derived = index._derived  # noqa: SLF001
    key = (root, obj, user_type)
    kept = derived.get(key, derived)
    if kept is _SEEN:
        # Seen before since the last write: worth keeping flat (a graph searched only once
        # costs no more than the search below), composed from the shapes kept below it.
        kept = _shape(root, obj, user_type, index)
        _keep(derived, key, kept)
    elif kept is derived:
        _keep(derived, key, _SEEN)
        kept = None
    if kept is not None:
        return _grants(cast("Shape", kept), user, wildcard, index, closures)
    root_obj = obj
    nodes = _nodes(derived)
    heights: dict[str, dict[str, int] | None] = {}
    missing: dict[str, int] | None = {}  # a marker: ``heights`` has no entry
    done: dict[str, int] = {}  # node -> longest path below it (nodes that grant nothing)
    on_path: set[str] = set()
    # frames: [node, children still to visit, next child, longest path below so far]
    stack: list[list[object]] = []
    # The index's dicts read directly (the same reads as ``get``, ``usersets``, ``by_object``,
    # without a method call each; iterated over snapshots all the same).
    by_object = index._by_object  # noqa: SLF001
    by_usersets = index._usersets  # noqa: SLF001
    empty: dict[str, Any] = {}
    plan = root
    node = obj + root.suffix
    depth = 0
    while True:
        # Expand ``node`` (``plan`` on ``obj`` at ``depth``): its direct grants, the nesting
        # leaves, and the children to visit.
        name = plan.name
        rels = by_object.get(obj, empty)
        users = rels.get(name, empty)
        if user_type in plan.object_types:
            t = users.get(user)
            if t is not None and t.condition is None:
                return 1
        if user_type in plan.wildcard_types:
            t = users.get(wildcard)
            if t is not None and t.condition is None:
                return 1
        leads = _leads(plan, obj, rels, by_usersets.get(obj, empty))
        below = 0
        children: list[tuple[str, Plan]] = []
        for target in leads:
            child = target[1]
            if user_type not in child.reachable:
                if not below:
                    below = 1  # the walk's depth check, then False
            elif child.nesting:
                known = heights.get(child.key, missing)
                if known is missing:
                    known = heights[child.key] = index.nesting_heights(child.type, child.name)
                if known is None:
                    return UNSURE  # the nesting graph has a cycle or a wildcard
                child_obj = target[0]
                height = 1 + known.get(child_obj, 0)
                found = closures.get(child.key)
                if found is None:
                    found = closures[child.key] = closure(index, child.type, child.name, user)
                if child_obj in found:
                    return 1 if depth + height < _LIMIT else UNSURE
                if height > below:  # noqa: PLR1730 - no call on the hot path
                    below = height
            else:
                children.append(target)
        on_path.add(node)
        stack.append([node, children, 0, below])
        # Visit the next child not yet done; close finished frames.
        while True:
            frame = stack[-1]
            kids: list[tuple[str, Plan]] = frame[1]  # type: ignore[assignment]
            i: int = frame[2]  # type: ignore[assignment]
            if i < len(kids):
                frame[2] = i + 1
                obj, plan = kids[i]
                node = obj + plan.suffix
                known_height = done.get(node)
                if known_height is not None:
                    if known_height >= frame[3]:  # type: ignore[operator]
                        frame[3] = known_height + 1
                    continue
                if node in on_path:
                    return UNSURE  # a cycle: the walk may answer cycle_detected
                depth = len(stack)
                if depth >= _LIMIT:
                    return UNSURE
                if obj != root_obj:
                    # A node on another object (a parent folder, shared by many documents):
                    # answered from its kept shape when there is one and the whole of it is
                    # within the limit from here (acyclic and closed, it cannot lead back to
                    # the path); kept the second time it is met.
                    key = (plan, obj, user_type)
                    kept = nodes.get(key, nodes)
                    if kept is _SEEN:
                        kept = _shape(plan, obj, user_type, index)
                        _keep_node(nodes, key, kept)
                    elif kept is nodes:
                        if len(nodes) >= _NODE_LIMIT:  # ``_keep_node``, without the call
                            nodes.clear()
                        nodes[key] = _SEEN
                        kept = None
                    if kept is not None:
                        below_kept: int = kept[3]  # type: ignore[index]
                        if depth + below_kept < _LIMIT:
                            if _grants(cast("Shape", kept), user, wildcard, index, closures):
                                return 1
                            done[node] = below_kept
                            if below_kept >= frame[3]:  # type: ignore[operator]
                                frame[3] = below_kept + 1
                            continue
                break
            stack.pop()
            finished: str = frame[0]  # type: ignore[assignment]
            longest: int = frame[3]  # type: ignore[assignment]
            on_path.discard(finished)
            done[finished] = longest
            if not stack:
                return 0 if longest < _LIMIT else UNSURE
            parent = stack[-1]
            if longest >= parent[3]:  # type: ignore[operator]
                parent[3] = longest + 1


def _merge(frame: list[Any], shape: Shape) -> None:
    """Add a kept shape below ``frame`` (its tuple dicts by identity: a node below two of the
    frame's children adds its dicts once)."""
    directs, wilds, leaves, longest = shape
    if directs:
        frame[4].update(zip(map(id, directs), directs, strict=True))
    if wilds:
        frame[5].update(zip(map(id, wilds), wilds, strict=True))
    if leaves:
        frame[6].update(dict.fromkeys(leaves))
    if longest >= frame[3]:
        frame[3] = longest + 1


def _shape(  # noqa: PLR0912, PLR0915 - the search's walk, collecting instead of answering
    root: Plan, obj: str, user_type: str, index: MemoryTupleIndex
) -> Shape | None:
    """The graph :func:`search` walks for ``obj#root`` and a plain user of ``user_type``,
    flattened, when its answer is plain reachability for every such user: the graph (of
    the nodes whose relation can reach ``user_type``) has no cycle, its nesting graphs none
    either, and its longest path with the nesting heights at its leaves stays within the
    depth limit. Then :func:`search` answers 1 exactly when a node grants the user directly
    (an unconditioned tuple of the user or of ``type:*`` where that type is allowed) or
    the user is in a nesting leaf (within the limit, as the longest path is), else 0; its
    walk would meet no cycle and no limit whatever the user. Otherwise None (the search
    walks in full, and answers or leaves it to the downward walk as it always did).

    Built from the index as it is, and composed: every node the walk finishes gets its own
    shape (its graph below is finished: acyclic, its longest path known), kept in the index's
    ``_derived`` dict (which every write empties) under ``(plan, object, user_type)`` when it
    is the root or was met before (:data:`_SEEN`), and a node already kept there is not walked
    again: its shape is added as it is. That is exact:
    a kept shape's graph is acyclic and closed under its edges, so it cannot lead back to a
    node on the current path (that would be a cycle within it), and the longest path below a
    node does not depend on the path that led there. A kept ``None`` (a cycle, a path too deep
    or a nesting cycle below that node) makes every graph above it ``None`` too. So a document
    whose folders were seen costs its own few reads and one lookup per parent."""
    nodes = _nodes(index._derived)  # noqa: SLF001
    heights: dict[str, dict[str, int] | None] = {}
    on_path: set[str] = set()
    done: dict[tuple[Plan, str, str], Shape] = {}  # the nodes finished by this walk
    # frames: [node, children still to visit, next child, longest path below so far,
    #          directs by id, wildcards by id, nesting leaves, key in ``_derived``]
    stack: list[list[Any]] = []
    by_object = index._by_object  # noqa: SLF001
    by_usersets = index._usersets  # noqa: SLF001
    empty: dict[str, Any] = {}
    plan = root
    node = obj + root.suffix
    key: tuple[Plan, str, str] = (root, obj, user_type)
    while True:
        rels = by_object.get(obj, empty)
        users = rels.get(plan.name, empty)
        directs: dict[int, dict[str, Any]] = {}
        wilds: dict[int, dict[str, Any]] = {}
        if users:
            if user_type in plan.object_types:
                directs[id(users)] = users
            if user_type in plan.wildcard_types:
                wilds[id(users)] = users
        leads = _leads(plan, obj, rels, by_usersets.get(obj, empty))
        leaves: dict[tuple[Plan, str], None] = {}
        below = 0
        children: list[tuple[str, Plan]] = []
        for child_obj, child in leads:
            if user_type not in child.reachable:
                if not below:
                    below = 1
            elif child.nesting:
                if child.key in heights:
                    known = heights[child.key]
                else:
                    known = heights[child.key] = index.nesting_heights(child.type, child.name)
                if known is None:
                    return None
                height = 1 + known.get(child_obj, 0)
                leaves[(child, child_obj)] = None
                if height > below:  # noqa: PLR1730 - as in the search
                    below = height
            else:
                children.append((child_obj, child))
        on_path.add(node)
        stack.append([node, children, 0, below, directs, wilds, leaves, key])
        while True:
            frame = stack[-1]
            kids: list[tuple[str, Plan]] = frame[1]
            i: int = frame[2]
            if i < len(kids):
                frame[2] = i + 1
                obj, plan = kids[i]
                key = (plan, obj, user_type)
                kept: object = done.get(key, nodes)
                if kept is nodes:
                    kept = nodes.get(key, nodes)
                if kept is not nodes and kept is not _SEEN:
                    if kept is None:
                        return None
                    _merge(frame, cast("Shape", kept))
                    continue
                node = obj + plan.suffix
                if node in on_path or len(stack) >= _LIMIT:
                    return None
                break
            stack.pop()
            on_path.discard(frame[0])
            longest: int = frame[3]
            shape: Shape | None = None
            if longest < _LIMIT:
                shape = (
                    tuple(frame[4].values()),
                    tuple(frame[5].values()),
                    tuple(frame[6]),
                    longest,
                )
            if shape is None or not stack:
                return shape  # the caller keeps the root's
            if nodes.get(frame[7]) is _SEEN:
                _keep_node(nodes, frame[7], shape)  # a node met before
            done[frame[7]] = shape
            parent = stack[-1]
            parent[4].update(frame[4])
            parent[5].update(frame[5])
            parent[6].update(frame[6])
            if longest >= parent[3]:
                parent[3] = longest + 1


def _keep(derived: dict[object, object], key: object, value: object) -> None:
    """Keep ``value`` under ``key`` in an index's ``_derived`` dict, emptied first when full
    (but for the shapes of the nodes below roots, bounded on their own: see :func:`_nodes`)."""
    if len(derived) >= _SHAPE_LIMIT:
        nodes = derived.get(_NODES)
        derived.clear()
        if nodes is not None:
            derived[_NODES] = nodes
    derived[key] = value


def _nodes(derived: dict[object, object]) -> dict[object, object]:
    """The shapes (or :data:`_SEEN` markers) of nodes met below the roots of checks, on other
    objects than the root's (parent folders, shared by many documents): kept in their own
    dict inside ``_derived`` (emptied with it by every write), so the churn of documents and
    users checked once does not push out the folders near the roots that every check meets."""
    nodes = derived.get(_NODES)
    if nodes is None:
        nodes = {}
        _keep(derived, _NODES, nodes)
    return cast("dict[object, object]", nodes)


def _keep_node(nodes: dict[object, object], key: object, value: object) -> None:
    """Keep a node's shape (or marker) in :func:`_nodes`, emptied first when full."""
    if len(nodes) >= _NODE_LIMIT:
        nodes.clear()
    nodes[key] = value
