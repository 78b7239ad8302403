"""The compiled form of an authorization model: types, relations, rewrites and their graph.

The engine compiles a model (OpenFGA's API JSON, schema 1.1) once. A relation's rewrite becomes
a small tree of :class:`Rewrite` nodes; each relation's type restrictions become lookup tables
that say which tuple forms (object, wildcard, userset) and which conditions are valid for it.
Two graph facts are precomputed because Check consults them at every step:

- ``reachable``: the user kinds (``user``, ``group#member``) that can possibly hold the relation,
  OpenFGA's "path exists" test that answers false before reading any tuple;
- ``cyclic``: whether the relation lies on a cycle of the relation graph, so cycle detection
  (which allocates) runs only where a cycle can occur.

It also validates tuples (OpenFGA's write validation) and request strings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bastion.authz.conditions import CompiledCondition, ConversionFailed, compile_condition
from bastion.authz.engine._rewrites import (
    RELATION_RE,
    Computed,
    Difference,
    Intersection,
    Rewrite,
    This,
    TupleToUserset,
    Union,
    parse_rewrite,
    walk,
)
from bastion.authz.errors import (
    ConditionError,
    InvalidTuple,
    RelationNotFound,
    TypeNotFound,
    ValidationError,
)
from bastion.authz.tuples import Tuple

__all__ = ["Relation", "TypeRef", "TypeSystem"]

# OpenFGA's formats (pkg/tuple): a type and an id without separators or whitespace.
_OBJECT_RE = re.compile(r"[^:#@\s]{1,254}:[^#:\s]{1,254}")


# ---------------------------------------------------------------------------- relations
@dataclass(frozen=True, slots=True)
class TypeRef:
    """One type restriction: ``user``, ``user:*``, ``group#member``, optionally ``with cond``."""

    type: str
    relation: str | None = None
    wildcard: bool = False
    condition: str | None = None

    def __str__(self) -> str:
        text = self.type + (":*" if self.wildcard else "")
        text += f"#{self.relation}" if self.relation else ""
        return text + (f" with {self.condition}" if self.condition else "")


@dataclass(slots=True)
class Relation:
    """A compiled relation of a type."""

    type: str
    name: str
    rewrite: Rewrite
    type_refs: tuple[TypeRef, ...] = ()
    #: user type -> conditions (``None`` = none) valid on a tuple whose user is an object
    object_conditions: dict[str, frozenset[str | None]] = field(default_factory=dict)
    #: user type -> valid conditions on a ``type:*`` tuple
    wildcard_conditions: dict[str, frozenset[str | None]] = field(default_factory=dict)
    #: (user type, relation) -> valid conditions on a ``type:id#relation`` tuple
    userset_conditions: dict[tuple[str, str], frozenset[str | None]] = field(default_factory=dict)
    #: user kinds (``user``, ``group#member``) that can hold this relation
    reachable: frozenset[str] = frozenset()
    cyclic: bool = False
    is_tupleset: bool = False


class TypeSystem:
    """A compiled, validated-for-evaluation view of one model."""

    def __init__(self, model: Mapping[str, Any]) -> None:
        if not isinstance(model, Mapping):
            raise ValidationError("an authorization model must be an object")
        self.model = model
        self.schema_version = str(model.get("schema_version", "1.1"))
        self.types: dict[str, dict[str, Relation]] = {}
        for definition in model.get("type_definitions") or ():
            self._add_type(definition)
        self.conditions: dict[str, CompiledCondition] = {
            name: compile_condition(definition)
            for name, definition in (model.get("conditions") or {}).items()
        }
        for relations in self.types.values():
            for relation in relations.values():
                _fill_condition_tables(relation)
                for node in walk(relation.rewrite):
                    if isinstance(node, TupleToUserset) and node.tupleset in relations:
                        relations[node.tupleset].is_tupleset = True
        self._check_references()
        self._compute_reachable()
        self._compute_cycles()

    # ------------------------------------------------------------------ building
    def _add_type(self, definition: Mapping[str, Any]) -> None:
        name = definition.get("type")
        if not isinstance(name, str) or not RELATION_RE.fullmatch(name):
            raise ValidationError("a type name is missing or malformed")
        metadata = (definition.get("metadata") or {}).get("relations") or {}
        relations: dict[str, Relation] = {}
        for rel_name, rewrite in (definition.get("relations") or {}).items():
            refs = tuple(
                TypeRef(
                    type=ref["type"],
                    relation=ref.get("relation") or None,
                    wildcard="wildcard" in ref,
                    condition=ref.get("condition") or None,
                )
                for ref in (metadata.get(rel_name) or {}).get("directly_related_user_types") or ()
            )
            relations[rel_name] = Relation(name, rel_name, parse_rewrite(rewrite), refs)
        self.types[name] = relations

    def _check_references(self) -> None:
        """Refuse a model whose rewrites or restrictions name undefined types or relations
        (the engine compiles references into direct calls)."""
        for t, relations in self.types.items():
            for relation in relations.values():
                for ref in relation.type_refs:
                    if ref.type not in self.types or (
                        ref.relation and ref.relation not in self.types[ref.type]
                    ):
                        raise ValidationError(f"'{t}#{relation.name}' names undefined '{ref}'")
                    if ref.condition and ref.condition not in self.conditions:
                        raise ValidationError(f"undefined condition '{ref.condition}'")
                for node in walk(relation.rewrite):
                    names = (
                        [node.relation]
                        if isinstance(node, Computed)
                        else [node.tupleset]
                        if isinstance(node, TupleToUserset)
                        else []
                    )
                    for name in names:
                        if name not in relations:
                            raise ValidationError(f"'{t}#{relation.name}' names undefined '{name}'")

    def _compute_reachable(self) -> None:
        """Fixpoint of the user kinds and relation nodes that can reach each relation.

        This is OpenFGA's "path exists" test: a relation node is reachable from itself, an
        intersection needs every operand, a difference only its base.
        """
        sets: dict[tuple[str, str], set[str]] = {
            (t, r): {f"{t}#{r}"} for t, rels in self.types.items() for r in rels
        }
        changed = True
        while changed:
            changed = False
            for (t, r), known in sets.items():
                relation = self.types[t][r]
                new = self._reach(relation.rewrite, relation, sets)
                if not new <= known:
                    known.update(new)
                    changed = True
        for (t, r), found in sets.items():
            self.types[t][r].reachable = frozenset(found)

    def _reach(
        self, node: Rewrite, relation: Relation, sets: dict[tuple[str, str], set[str]]
    ) -> set[str]:
        t = relation.type
        if isinstance(node, This):
            found: set[str] = set()
            for ref in relation.type_refs:
                if ref.relation:
                    found.add(f"{ref.type}#{ref.relation}")
                    found |= sets.get((ref.type, ref.relation), set())
                else:
                    found.add(ref.type)
            return found
        if isinstance(node, Computed):
            return set(sets.get((t, node.relation), ()))
        if isinstance(node, TupleToUserset):
            found = set()
            for parent_type in self.tupleset_types(t, node.tupleset):
                found |= sets.get((parent_type, node.relation), set())
            return found
        if isinstance(node, Union):
            found = set()
            for child in node.children:
                found |= self._reach(child, relation, sets)
            return found
        if isinstance(node, Intersection):
            parts = [self._reach(child, relation, sets) for child in node.children]
            return set.intersection(*parts)
        if not isinstance(node, Difference):  # the Rewrite kinds are closed
            raise TypeError(f"unknown rewrite {node!r}")
        return self._reach(node.base, relation, sets)

    def tupleset_types(self, object_type: str, tupleset: str) -> list[str]:
        """The object types a tupleset relation may point to."""
        relation = self.types.get(object_type, {}).get(tupleset)
        if relation is None:
            return []
        return list(dict.fromkeys(r.type for r in relation.type_refs if not r.relation))

    def _compute_cycles(self) -> None:
        """Mark relations on a cycle of the dependency graph (computed, userset, TTU edges)."""
        edges: dict[tuple[str, str], set[tuple[str, str]]] = {}
        for t, rels in self.types.items():
            for r, relation in rels.items():
                out: set[tuple[str, str]] = set()
                for node in walk(relation.rewrite):
                    if isinstance(node, This):
                        out |= {
                            (ref.type, ref.relation) for ref in relation.type_refs if ref.relation
                        }
                    elif isinstance(node, Computed):
                        out.add((t, node.relation))
                    elif isinstance(node, TupleToUserset):
                        out |= {(p, node.relation) for p in self.tupleset_types(t, node.tupleset)}
                edges[(t, r)] = {e for e in out if e[1] in self.types.get(e[0], {})}
        for start, relation in ((k, self.types[k[0]][k[1]]) for k in edges):
            seen: set[tuple[str, str]] = set()
            stack = list(edges[start])
            while stack:
                current = stack.pop()
                if current == start:
                    relation.cyclic = True
                    break
                if current not in seen:
                    seen.add(current)
                    stack.extend(edges.get(current, ()))

    # ------------------------------------------------------------------ lookups
    def relation(self, object_type: str, relation: str) -> Relation:
        """Return the relation; raises TypeNotFound / RelationNotFound."""
        relations = self.types.get(object_type)
        if relations is None:
            raise TypeNotFound(f"type '{object_type}' not found")
        found = relations.get(relation)
        if found is None:
            raise RelationNotFound(f"relation '{object_type}#{relation}' not found")
        return found

    def has_relation(self, object_type: str, relation: str) -> bool:
        return relation in self.types.get(object_type, {})

    # ------------------------------------------------------------------ validation
    def check_user_object_relation(self, obj: str, relation: str, user: str) -> None:
        """OpenFGA's loose validation of a Check tuple key; raises TypeNotFound,
        RelationNotFound or ValidationError (the caller maps them)."""
        self.check_user(user)
        self.check_object_relation(obj, relation)

    def check_object_relation(self, obj: str, relation: str) -> None:
        """Validate an object string and a relation on its type; raises ValidationError,
        TypeNotFound or RelationNotFound."""
        if not _OBJECT_RE.fullmatch(obj):
            raise ValidationError(f"invalid 'object' field format: '{obj}'")
        object_type, _, object_id = obj.partition(":")
        if object_id == "*":
            raise ValidationError("the 'object' field cannot reference a typed wildcard")
        if not RELATION_RE.fullmatch(relation):
            raise ValidationError("the 'relation' field is malformed")
        self.relation(object_type, relation)

    def check_user(self, user: str) -> None:
        """Validate a ``user`` string against the model (format, type, userset relation)."""
        user_object, sep, user_relation = user.partition("#")
        if not _OBJECT_RE.fullmatch(user_object) or (
            sep and not RELATION_RE.fullmatch(user_relation)
        ):
            raise ValidationError(
                "the 'user' field must be an object (e.g. document:1) or an 'object#relation' "
                "or a typed wildcard (e.g. group:*)"
            )
        user_type, _, user_id = user_object.partition(":")
        if sep and user_id == "*":
            raise ValidationError("the 'user' field cannot reference a typed wildcard in a userset")
        if user_type not in self.types:
            raise TypeNotFound(f"type '{user_type}' not found")
        if sep:
            self.relation(user_type, user_relation)

    def validate_tuple(self, t: Tuple) -> None:
        """OpenFGA's write validation of one tuple.

        Raises :class:`InvalidTuple` (2027) for a malformed tuple, an unknown type or relation,
        a tupleset misuse or a type restriction it breaks; :class:`ValidationError` (2000) for
        a missing, undefined or misapplied condition or an invalid condition context.
        """
        try:
            self.check_user_object_relation(t.object, t.relation, t.user)
        except (ValidationError, TypeNotFound, RelationNotFound) as error:
            raise InvalidTuple(f"invalid tuple '{t}': {error.detail}") from error
        relation = self.types[t.object_type][t.relation]
        user_object, _, user_relation = t.user.partition("#")
        user_type, _, user_id = user_object.partition(":")
        if relation.is_tupleset and (user_relation or user_id == "*"):
            raise InvalidTuple(
                f"invalid tuple '{t}': a tupleset relation '{relation.type}#{relation.name}' "
                "takes objects only, not usersets or wildcards"
            )
        if not relation.type_refs and isinstance(relation.rewrite, This):
            raise InvalidTuple(f"invalid tuple '{t}': the relation has no type restrictions")
        if not _form_allowed(relation, user_type, user_relation, user_id == "*"):
            raise InvalidTuple(
                f"invalid tuple '{t}': '{t.user}' is not an allowed type restriction for "
                f"'{relation.type}#{relation.name}'"
            )
        self._validate_condition(t, relation, user_type, user_relation, user_id == "*")

    def _validate_condition(
        self, t: Tuple, relation: Relation, user_type: str, user_relation: str, wild: bool
    ) -> None:
        if t.condition is None:
            if not _unconditioned_allowed(relation, user_type, user_relation, wild):
                raise ValidationError(f"invalid tuple '{t}': condition is missing")
            return
        condition = self.conditions.get(t.condition)
        if condition is None:
            raise ValidationError(f"invalid tuple '{t}': undefined condition '{t.condition}'")
        if not any(r.type == user_type and r.condition == t.condition for r in relation.type_refs):
            raise ValidationError(f"invalid tuple '{t}': invalid condition for type restriction")
        for key, value in (t.context or {}).items():
            kind = condition.parameters.get(key)
            if kind is None:
                raise ValidationError(
                    f"invalid tuple '{t}': found invalid context parameter: {key}"
                )
            try:
                kind.convert(value)
            except ConversionFailed as error:
                raise ConditionError(f"invalid tuple '{t}': parameter '{key}': {error}") from error

    def is_valid_for_read(self, t: Tuple) -> bool:
        """True if a stored tuple is valid under this model (invalid ones are ignored)."""
        try:
            self.validate_tuple(t)
        except (InvalidTuple, ValidationError):
            return False
        return True


def _form_allowed(relation: Relation, user_type: str, user_relation: str, wild: bool) -> bool:
    """OpenFGA's validateTypeRestrictions."""
    for ref in relation.type_refs:
        if ref.type != user_type:
            continue
        if user_relation:
            if ref.relation == user_relation:
                return True
        elif wild:
            if ref.wildcard:
                return True
        elif not ref.wildcard and not ref.relation:
            return True
    return False


def _unconditioned_allowed(
    relation: Relation, user_type: str, user_relation: str, wild: bool
) -> bool:
    """OpenFGA's validateCondition for a tuple without a condition."""
    for ref in relation.type_refs:
        if ref.condition is not None or ref.type != user_type:
            continue
        if ref.relation is not None and ref.relation != user_relation:
            continue
        if ref.wildcard and not wild:
            continue
        return True
    return False


def _fill_condition_tables(relation: Relation) -> None:
    """Precompute, per tuple form, the conditions a valid tuple may carry."""
    conditional: dict[str, set[str]] = {}
    for ref in relation.type_refs:
        if ref.condition is not None:
            conditional.setdefault(ref.type, set()).add(ref.condition)
    for ref in relation.type_refs:
        names: set[str | None] = set(conditional.get(ref.type, ()))
        if ref.relation:
            if _unconditioned_allowed(relation, ref.type, ref.relation, wild=False):
                names.add(None)
            relation.userset_conditions[(ref.type, ref.relation)] = frozenset(names)
        elif ref.wildcard:
            if _unconditioned_allowed(relation, ref.type, "", wild=True):
                names.add(None)
            relation.wildcard_conditions[ref.type] = frozenset(names)
        else:
            if _unconditioned_allowed(relation, ref.type, "", wild=False):
                names.add(None)
            relation.object_conditions[ref.type] = frozenset(names)
