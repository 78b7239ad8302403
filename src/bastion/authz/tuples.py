"""Relationship tuples and the in-memory index the engine evaluates over.

A tuple says that ``user`` has ``relation`` on ``object``: ``document:1#viewer@user:anne``.
The user is an object (``user:anne``), a type-bound wildcard (``user:*``, every user of that
type) or a userset (``group:eng#member``, every member of the group). A tuple may carry a
condition name and the condition's stored context (ABAC).

The identity of a tuple is ``(object, relation, user)``: a store holds at most one tuple per key,
whatever its condition (OpenFGA's rule), so :meth:`MemoryTupleIndex.add` replaces.

Invariant the engine relies on: every :class:`TupleSource` method answers from a consistent
snapshot and returns immutable sequences (never live views), so an evaluation that interleaves
with a writer sees either the old or the new tuple, never a ``dict changed size`` error.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "MemoryTupleIndex",
    "OverlayTupleSource",
    "Tuple",
    "TupleSource",
    "object_type",
    "split_userset",
]

_EMPTY: tuple[Any, ...] = ()


def object_type(obj: str) -> str:
    """Return the type of ``"type:id"`` (or of ``"type:id#relation"``)."""
    return obj.partition(":")[0]


def split_userset(user: str) -> tuple[str, str]:
    """Split ``"group:eng#member"`` into ``("group:eng", "member")``; ``""`` when no relation."""
    obj, _, relation = user.partition("#")
    return obj, relation


@dataclass(frozen=True, slots=True)
class Tuple:
    """One relationship tuple (see the module docstring for the user forms)."""

    object: str
    relation: str
    user: str
    condition: str | None = None
    context: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        # A read-only copy: a caller mutating its dict later must not change a stored grant.
        if self.context is not None and not isinstance(self.context, MappingProxyType):
            object.__setattr__(self, "context", MappingProxyType(dict(self.context)))

    def __hash__(self) -> int:
        # The context is a mapping (unhashable); the key and condition identify a tuple.
        return hash((self.object, self.relation, self.user, self.condition))

    @property
    def key(self) -> tuple[str, str, str]:
        """The tuple's identity in a store: ``(object, relation, user)``."""
        return (self.object, self.relation, self.user)

    @property
    def object_type(self) -> str:
        """The type of the tuple's object (``document`` for ``document:1``)."""
        return self.object.partition(":")[0]

    @property
    def user_type(self) -> str:
        """The type of the tuple's user (``group`` for ``group:eng#member``)."""
        return self.user.partition(":")[0]

    @property
    def is_userset(self) -> bool:
        """True when the user is ``type:id#relation``."""
        return "#" in self.user

    @property
    def is_wildcard(self) -> bool:
        """True when the user is ``type:*``."""
        return self.user.endswith(":*")

    def __str__(self) -> str:
        return f"{self.object}#{self.relation}@{self.user}"


@runtime_checkable
class TupleSource(Protocol):
    """A read-only set of tuples, queried along the engine's access patterns.

    Every method returns an immutable snapshot (a tuple or ``None``); none of them raises for an
    unknown object, relation or user: they answer empty.
    """

    def get(self, object: str, relation: str, user: str) -> Tuple | None:  # noqa: A002
        """Return the tuple with this exact key, or ``None``."""
        ...

    def by_object(self, object: str, relation: str) -> Iterable[Tuple]:  # noqa: A002
        """Return every tuple ``object#relation@*`` (objects, wildcards and usersets)."""
        ...

    def usersets(self, object: str, relation: str) -> Iterable[Tuple]:  # noqa: A002
        """Return the tuples ``object#relation@type:id#rel`` whose user is a userset."""
        ...

    def by_user(self, object_type: str, relation: str, user: str) -> Iterable[Tuple]:
        """Return every tuple ``<object_type>:*#relation@user`` for this exact user string."""
        ...

    def objects_of_type(self, object_type: str) -> Iterable[str]:
        """Return every object of this type that appears as a tuple's object."""
        ...


class MemoryTupleIndex:
    """A mutable in-memory :class:`TupleSource`, indexed by object and by user.

    Not safe for concurrent writers on several threads; readers on the event loop see a
    consistent state between two writes (the engine is synchronous).
    """

    __slots__ = (
        "_by_object",
        "_by_user",
        "_count",
        "_derived",
        "_heights",
        "_objects",
        "_userset_changes",
        "_usersets",
    )

    def __init__(self, tuples: Iterable[Tuple] = ()) -> None:
        # object -> relation -> user -> tuple: nested dicts, so a lookup allocates no key.
        self._by_object: dict[str, dict[str, dict[str, Tuple]]] = {}
        # The subset whose user is a userset, for Check's userset step without a scan.
        self._usersets: dict[str, dict[str, dict[str, Tuple]]] = {}
        # (object type, relation, user) -> object -> tuple: the reverse index (ListObjects).
        self._by_user: dict[tuple[str, str, str], dict[str, Tuple]] = {}
        # object type -> object -> number of tuples on it.
        self._objects: dict[str, dict[str, int]] = {}
        self._count = 0
        # Userset tuples added or removed so far, and what ``nesting_heights`` derived from
        # them: (object type, relation) -> (that count, the heights).
        self._userset_changes = 0
        self._heights: dict[tuple[str, str], tuple[int, dict[str, int] | None]] = {}
        #: What readers derived from the tuples as they are (the engine's search structures,
        #: see ``engine._search``): emptied by every write, so nothing in it is ever stale.
        self._derived: dict[object, object] = {}
        for t in tuples:
            self.add(t)

    # ------------------------------------------------------------------ writes
    def add(self, t: Tuple) -> bool:
        """Store ``t``, replacing a tuple with the same key; True unless it was already there."""
        relations = self._by_object.setdefault(t.object, {})
        users = relations.setdefault(t.relation, {})
        old = users.get(t.user)
        if old is not None and old == t:
            return False
        self._derived.clear()
        users[t.user] = t
        if "#" in t.user:
            self._usersets.setdefault(t.object, {}).setdefault(t.relation, {})[t.user] = t
            self._userset_changes += 1
        otype = t.object.partition(":")[0]
        self._by_user.setdefault((otype, t.relation, t.user), {})[t.object] = t
        if old is None:
            self._count += 1
            objects = self._objects.setdefault(otype, {})
            objects[t.object] = objects.get(t.object, 0) + 1
        return True

    def remove(self, object: str, relation: str, user: str) -> Tuple | None:  # noqa: A002
        """Delete the tuple with this key; return it, or ``None`` when there was none."""
        relations = self._by_object.get(object)
        users = relations.get(relation) if relations is not None else None
        if users is None or user not in users:
            return None
        self._derived.clear()
        old = users.pop(user)
        _prune(self._by_object, object, relation, users)
        if "#" in user:
            sets = self._usersets[object][relation]
            del sets[user]
            self._userset_changes += 1
            _prune(self._usersets, object, relation, sets)
        otype = object.partition(":")[0]
        rkey = (otype, relation, user)
        objects_of_user = self._by_user[rkey]
        del objects_of_user[object]
        if not objects_of_user:
            del self._by_user[rkey]
        objects = self._objects[otype]
        objects[object] -= 1
        if objects[object] == 0:
            del objects[object]
            if not objects:
                del self._objects[otype]
        self._count -= 1
        return old

    def discard(self, t: Tuple) -> bool:
        """Delete the tuple with ``t``'s key; True if one was there."""
        return self.remove(t.object, t.relation, t.user) is not None

    def clear(self) -> None:
        """Delete every tuple."""
        self._by_object.clear()
        self._usersets.clear()
        self._by_user.clear()
        self._objects.clear()
        self._count = 0
        self._userset_changes += 1
        self._derived.clear()

    def overlay(self, contextual: Iterable[Tuple]) -> TupleSource:
        """Return this index seen with ``contextual`` tuples added, without copying it.

        When a contextual tuple has the key of a stored one, the contextual one wins for
        :meth:`get` (OpenFGA's combined reader); both are returned by the iterating methods.
        """
        extra = MemoryTupleIndex(contextual)
        if not extra:
            return self
        return OverlayTupleSource(self, extra)

    # ------------------------------------------------------------------ reads
    def get(self, object: str, relation: str, user: str) -> Tuple | None:  # noqa: A002
        """Return the tuple with this exact key, or ``None``."""
        relations = self._by_object.get(object)
        if relations is None:
            return None
        users = relations.get(relation)
        return users.get(user) if users is not None else None

    def by_object(self, object: str, relation: str) -> tuple[Tuple, ...]:  # noqa: A002
        """Return every tuple ``object#relation@*``."""
        relations = self._by_object.get(object)
        if relations is None:
            return _EMPTY
        users = relations.get(relation)
        return tuple(users.values()) if users else _EMPTY

    def usersets(self, object: str, relation: str) -> tuple[Tuple, ...]:  # noqa: A002
        """Return the tuples ``object#relation@type:id#rel``."""
        relations = self._usersets.get(object)
        if relations is None:
            return _EMPTY
        users = relations.get(relation)
        return tuple(users.values()) if users else _EMPTY

    def by_user(self, object_type: str, relation: str, user: str) -> tuple[Tuple, ...]:
        """Return every tuple ``<object_type>:*#relation@user``."""
        objects = self._by_user.get((object_type, relation, user))
        return tuple(objects.values()) if objects else _EMPTY

    def objects_of_type(self, object_type: str) -> tuple[str, ...]:
        """Return every object of this type that has at least one tuple."""
        objects = self._objects.get(object_type)
        return tuple(objects) if objects else _EMPTY

    def nesting_heights(self, object_type: str, relation: str) -> dict[str, int] | None:
        """The graph of unconditioned tuples ``<type>:a#relation@<type>:b#relation`` (``a``
        contains ``b``): for each object with such a tuple, the length of the longest chain
        below it (objects absent: 0); None when the graph has a cycle or a wildcard. Derived
        once per change of the userset tuples (a walk of the type's objects)."""
        key = (object_type, relation)
        known = self._heights.get(key)
        if known is not None and known[0] == self._userset_changes:
            return known[1]
        heights = _heights(self, object_type, relation)
        self._heights[key] = (self._userset_changes, heights)
        return heights

    def relations_of(self, object: str) -> tuple[str, ...]:  # noqa: A002
        """Return the relations that have at least one tuple on ``object``."""
        relations = self._by_object.get(object)
        return tuple(relations) if relations else _EMPTY

    def tuples_of_object(self, object: str) -> tuple[Tuple, ...]:  # noqa: A002
        """Return every tuple on ``object`` (for a cascading delete of the object)."""
        relations = self._by_object.get(object)
        if not relations:
            return _EMPTY
        return tuple(t for users in relations.values() for t in users.values())

    def tuples_of_user(self, user: str) -> tuple[Tuple, ...]:
        """Return every tuple whose user is exactly ``user`` (for a cascading delete).

        A scan of the reverse index's keys (no per-user index is kept, to save memory): meant
        for rare administrative cascades, not for request paths."""
        return tuple(
            t for (_, _, u), objects in self._by_user.items() if u == user for t in objects.values()
        )

    def __contains__(self, t: object) -> bool:
        return isinstance(t, Tuple) and self.get(t.object, t.relation, t.user) == t

    def __iter__(self) -> Iterator[Tuple]:
        return iter(self.tuples())

    def tuples(self) -> tuple[Tuple, ...]:
        """Return every tuple (a snapshot)."""
        return tuple(
            t
            for relations in self._by_object.values()
            for users in relations.values()
            for t in users.values()
        )

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0


class OverlayTupleSource:
    """A base :class:`TupleSource` seen with extra (contextual) tuples; copies neither."""

    __slots__ = ("base", "extra")

    def __init__(self, base: TupleSource, extra: MemoryTupleIndex) -> None:
        self.base = base
        self.extra = extra

    def get(self, object: str, relation: str, user: str) -> Tuple | None:  # noqa: A002
        """Return the contextual tuple with this key if any, else the base one."""
        found = self.extra.get(object, relation, user)
        return found if found is not None else self.base.get(object, relation, user)

    def by_object(self, object: str, relation: str) -> tuple[Tuple, ...]:  # noqa: A002
        """Return the contextual then the base tuples ``object#relation@*``."""
        return self.extra.by_object(object, relation) + tuple(self.base.by_object(object, relation))

    def usersets(self, object: str, relation: str) -> tuple[Tuple, ...]:  # noqa: A002
        """Return the contextual then the base userset tuples on ``object#relation``."""
        return self.extra.usersets(object, relation) + tuple(self.base.usersets(object, relation))

    def by_user(self, object_type: str, relation: str, user: str) -> tuple[Tuple, ...]:
        """Return the contextual then the base tuples for this user."""
        return self.extra.by_user(object_type, relation, user) + tuple(
            self.base.by_user(object_type, relation, user)
        )

    def objects_of_type(self, object_type: str) -> tuple[str, ...]:
        """Return the objects of this type in either source, each once."""
        seen = dict.fromkeys(self.extra.objects_of_type(object_type))
        seen.update(dict.fromkeys(self.base.objects_of_type(object_type)))
        return tuple(seen)


def _heights(index: MemoryTupleIndex, object_type: str, relation: str) -> dict[str, int] | None:
    """See :meth:`MemoryTupleIndex.nesting_heights` (an iterative depth-first walk)."""
    suffix = "#" + relation
    children: dict[str, list[str]] = {}
    for obj in index.objects_of_type(object_type):
        below = []
        for t in index.usersets(obj, relation):
            if t.condition is None and t.user.endswith(suffix):
                child = t.user[: -len(suffix)]
                if child.partition(":")[0] == object_type:
                    if child.endswith(":*"):
                        return None
                    below.append(child)
        if below:
            children[obj] = below
    heights: dict[str, int] = {}
    on_path: set[str] = set()
    for root in children:
        if root in heights:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        on_path.add(root)
        while stack:
            node, i = stack[-1]
            below = children.get(node) or []
            if i < len(below):
                stack[-1] = (node, i + 1)
                child = below[i]
                if child in on_path:
                    return None  # a cycle
                if child not in heights and child in children:
                    on_path.add(child)
                    stack.append((child, 0))
                continue
            stack.pop()
            on_path.discard(node)
            heights[node] = 1 + max(heights.get(c, 0) for c in below)
    return heights


def _prune(
    index: dict[str, dict[str, dict[str, Tuple]]],
    obj: str,
    relation: str,
    users: dict[str, Tuple],
) -> None:
    """Drop empty inner dicts so the index does not grow with deleted keys."""
    if not users:
        relations = index[obj]
        del relations[relation]
        if not relations:
            del index[obj]
