"""Semantic validation of a model, with OpenFGA's error kinds and messages.

The rules and wording follow OpenFGA's language tooling (``errorType`` values):

- ``schema-version-required``, ``invalid-schema``: the schema must be ``1.1``;
- ``invalid-name``, ``reserved-type-keywords``, ``reserved-relation-keywords``: type names
  match ``^[^:#@\\*\\s]{1,254}$``, relation names ``^[^:#@\\*\\s]{1,50}$``, neither is
  ``self`` nor ``this``;
- ``duplicated-error``: a type defined twice; with the language rules also a type restriction
  or an operand repeated within one relation;
- ``missing-definition``, ``invalid-type``, ``invalid-relation-type``,
  ``tupleuserset-not-direct``, ``invalid-relation-on-tupleset``: references to relations and
  types that do not exist, or a ``from`` over a relation that is not a plain direct one;
- ``condition-not-defined``, ``different-nested-condition-name``, ``condition-not-used``
  (language rules only), plus ``invalid-condition`` (the expression must compile, type-check
  and return bool, as the server requires);
- ``assignable-relation-must-have-type``, ``non-assignable-relation-must-not-have-types``:
  a ``this`` and its metadata agree (JSON models only; the DSL cannot express a mismatch);
- ``relation-no-entry-point``: a relation no user can ever have (``no entrypoint``), or only
  through a cycle of rewrites (``potential loop``); ``cycle`` (server rules): relations on a
  cycle of computed relations. Checked only when nothing else is wrong.

Two rule sets, chosen by ``language``: OpenFGA's server at model write (the default, used for
every model Bastion stores) and its language tooling (``openfga/language``'s validator and test
cases, for DSL editing), which differ only where noted above.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bastion.authz.conditions import compile_condition
from bastion.authz.errors import ConditionError, ModelIssue, ModelValidationError
from bastion.authz.model._entrypoints import impossible_relations
from bastion.authz.model._index import ModelIndex, Rewrite, children, leaves, partial, restriction
from bastion.authz.model._shape import ShapeError, check_shape

SCHEMA_VERSION = "1.1"
_TYPE_NAME = re.compile(r"[^:#@\*\s]{1,254}\Z")
_RELATION_NAME = re.compile(r"[^:#@\*\s]{1,50}\Z")
_RESERVED = frozenset({"self", "this"})


class _Checker:
    def __init__(self, model: Mapping[str, Any], *, language: bool) -> None:
        self.language = language
        self.raw = model
        self.model = ModelIndex(model)
        self.issues: list[ModelIssue] = []

    def add(
        self,
        kind: str,
        message: str,
        *,
        symbol: str | None = None,
        type_name: str | None = None,
        relation: str | None = None,
    ) -> None:
        self.issues.append(
            ModelIssue(kind, message, symbol=symbol, type_name=type_name, relation=relation)
        )

    # ------------------------------------------------------------ the passes

    def run(self) -> list[ModelIssue]:
        version = self.raw.get("schema_version")
        if not version:
            self.add("schema-version-required", "schema version required", symbol="")
            return self.issues
        if version != SCHEMA_VERSION:
            self.add("invalid-schema", f"invalid schema {version}", symbol=str(version))
            return self.issues
        self.names_and_duplicates()
        for type_name, definition in self.model.types.items():
            for relation, rewrite in (definition.get("relations") or {}).items():
                self.relation(type_name, str(relation), rewrite)
        self.conditions()
        if not self.issues:
            self.entry_points()
        return self.issues

    def names_and_duplicates(self) -> None:
        seen: set[str] = set()
        for definition in self.raw.get("type_definitions") or []:
            name = str(definition.get("type"))
            if name in _RESERVED:
                self.add(
                    "reserved-type-keywords",
                    "a type cannot be named 'self' or 'this'.",
                    symbol=name,
                    type_name=name,
                )
            elif not _TYPE_NAME.match(name):
                self.add(
                    "invalid-name",
                    f"type '{name}' does not match naming rule: '^[^:#@\\*\\s]{{1,254}}$'.",
                    symbol=name,
                    type_name=name,
                )
            if name in seen:
                self.add(
                    "duplicated-error",
                    f"the type `{name}` is a duplicate.",
                    symbol=name,
                    type_name=name,
                )
            seen.add(name)
            for relation in definition.get("relations") or {}:
                self.relation_name(name, str(relation))

    def relation_name(self, type_name: str, relation: str) -> None:
        if relation in _RESERVED:
            self.add(
                "reserved-relation-keywords",
                "a relation cannot be named 'self' or 'this'.",
                symbol=relation,
                type_name=type_name,
                relation=relation,
            )
        elif not _RELATION_NAME.match(relation):
            self.add(
                "invalid-name",
                f"relation '{relation}' of type '{type_name}' does not match naming rule: "
                "'^[^:#@\\*\\s]{1,50}$'.",
                symbol=relation,
                type_name=type_name,
                relation=relation,
            )

    # ------------------------------------------------------------ one relation

    def relation(self, type_name: str, relation: str, rewrite: Rewrite) -> None:
        where: dict[str, str | None] = {"type_name": type_name, "relation": relation}
        nodes = list(leaves(rewrite))
        self.duplicate_partials(relation, rewrite, where)
        has_this = any("this" in leaf for leaf in nodes)
        direct = self.model.direct(type_name, relation)
        if has_this and not direct:
            self.add(
                "assignable-relation-must-have-type",
                f"the assignable relation '{relation}' in object type '{type_name}' must "
                "contain at least one type",
                symbol=relation,
                **where,
            )
        if direct and not has_this:
            self.add(
                "non-assignable-relation-must-not-have-types",
                f"the non-assignable relation '{relation}' in object type '{type_name}' should "
                "not contain a type",
                symbol=relation,
                **where,
            )
        self.direct_types(relation, direct, where)
        for leaf in nodes:
            if "computedUserset" in leaf:
                target = str(leaf["computedUserset"].get("relation"))
                if target not in self.model.relations(type_name):
                    self.add(
                        "missing-definition",
                        f"the relation `{target}` does not exist.",
                        symbol=target,
                        **where,
                    )
            elif "tupleToUserset" in leaf:
                self.tuple_to_userset(type_name, leaf["tupleToUserset"], where)

    def duplicate_partials(
        self, relation: str, node: Rewrite, where: dict[str, str | None]
    ) -> None:
        """A computed relation or ``x from y`` repeated among the operands of one operator."""
        seen: set[str] = set()
        for child in children(node):
            text = partial(child)
            if self.language and text is not None and text in seen:  # the server accepts it
                self.add(
                    "duplicated-error",
                    f"the partial relation definition `{text}` is a duplicate in the "
                    f"relation `{relation}`.",
                    symbol=text,
                    **where,
                )
            if text is not None:
                seen.add(text)
            self.duplicate_partials(relation, child, where)

    def direct_types(
        self, relation: str, direct: list[Mapping[str, Any]], where: dict[str, str | None]
    ) -> None:
        seen: set[tuple[str, str | None]] = set()
        for entry in direct:
            text = restriction(entry)
            key = (text, entry.get("condition") or None)
            if self.language and key in seen:  # the server accepts a repeated restriction
                self.add(
                    "duplicated-error",
                    f"the type restriction `{text}` is a duplicate in the relation `{relation}`.",
                    symbol=text,
                    **where,
                )
            seen.add(key)
            target = str(entry.get("type"))
            if target not in self.model.types:
                self.add("invalid-type", f"`{target}` is not a valid type.", symbol=target, **where)
            elif entry.get("relation") and entry["relation"] not in self.model.relations(target):
                self.add(
                    "invalid-relation-type",
                    f"`{entry['relation']}` is not a valid relation for `{target}`.",
                    symbol=text,
                    **where,
                )
            condition = entry.get("condition")
            if condition and condition not in self.model.conditions:
                self.add(
                    "condition-not-defined",
                    f"`{condition}` is not a defined condition in the model.",
                    symbol=str(condition),
                    **where,
                )

    def tuple_to_userset(
        self, type_name: str, ttu: Mapping[str, Any], where: dict[str, str | None]
    ) -> None:
        tupleset = str(ttu["tupleset"].get("relation"))
        computed = str(ttu["computedUserset"].get("relation"))
        symbol = f"{computed} from {tupleset}"
        tupleset_rewrite = self.model.relations(type_name).get(tupleset)
        if tupleset_rewrite is None:
            self.add(
                "invalid-relation-type",
                f"`{tupleset}` is not a valid relation for `{type_name}`.",
                symbol=symbol,
                **where,
            )
            return
        direct = self.model.direct(type_name, tupleset)
        if "this" not in tupleset_rewrite or any(
            entry.get("relation") or entry.get("wildcard") is not None for entry in direct
        ):
            self.add(
                "tupleuserset-not-direct",
                f"`{tupleset}` relation used inside from allows only direct relation.",
                symbol=tupleset,
                **where,
            )
            return
        targets = list(dict.fromkeys(str(entry.get("type")) for entry in direct))
        if any(computed in self.model.relations(target) for target in targets):
            return
        for target in targets:
            self.add(
                "invalid-relation-on-tupleset",
                f"the `{computed}` relation definition on type `{type_name}` is not valid: "
                f"`{computed}` does not exist on `{tupleset}`, which is of type `{target}`.",
                symbol=symbol,
                **where,
            )

    # ------------------------------------------------------------ conditions

    def conditions(self) -> None:
        used = {
            str(entry["condition"])
            for type_name, definition in self.model.types.items()
            for relation in definition.get("relations") or {}
            for entry in self.model.direct(type_name, str(relation))
            if entry.get("condition")
        }
        for key, definition in self.model.conditions.items():
            name = definition.get("name") if isinstance(definition, Mapping) else None
            if name and name != key:
                self.add(
                    "different-nested-condition-name",
                    f"condition key is `{key}` but nested name property is {name}",
                    symbol=str(name),
                )
                continue
            if self.language and key not in used:  # the server accepts an unused condition
                self.add(
                    "condition-not-used",
                    f"`{key}` condition is not used in the model.",
                    symbol=str(key),
                )
            try:
                compile_condition({"name": key, **definition})
            except ConditionError as error:
                self.add("invalid-condition", error.detail, symbol=str(key))

    # ------------------------------------------------------------ entry points

    def entry_points(self) -> None:
        for type_name, relation, reason in impossible_relations(self.model, language=self.language):
            if reason == "cycle":
                self.add(
                    "cycle",
                    f"the definition of relation '{relation}' in object type '{type_name}' is "
                    "invalid: an authorization model cannot contain a cycle",
                    symbol=relation,
                    type_name=type_name,
                    relation=relation,
                )
                continue
            self.add(
                "relation-no-entry-point",
                f"`{relation}` is an impossible relation for `{type_name}` ({reason}).",
                symbol=relation,
                type_name=type_name,
                relation=relation,
            )


def model_issues(model: Any, *, language: bool = False) -> list[ModelIssue]:
    """Every issue of ``model`` (empty when it is valid).

    By default the rules of OpenFGA's server at model write; ``language=True`` applies those
    of its language tooling instead (the ``openfga/language`` validator behind editors and its
    test cases), which also reports unused conditions and repeated type restrictions or
    operands, but accepts a cycle of computed relations none of which is directly assignable.
    JSON without a model's shape gives one ``invalid-json`` issue naming the offending path.
    """
    try:
        check_shape(model)
    except ShapeError as error:
        return [ModelIssue("invalid-json", str(error))]
    return _Checker(model, language=language).run()


def validate_model(model: Mapping[str, Any]) -> None:
    """Raise :class:`ModelValidationError` listing every issue, if ``model`` has any.

    Refuses what OpenFGA's server refuses at model write, and also compiles every condition
    (``invalid-condition`` for one that does not compile, type-check or return bool).
    """
    issues = model_issues(model)
    if issues:
        raise ModelValidationError(issues)
