"""Validation of DSL text: the semantic issues of the parsed model, located in the text.

Each issue is anchored as OpenFGA's language tooling anchors it: names (types, relations,
conditions) at their definition, references at their first mention in the relation's
expression, a ``from`` over a non-direct relation at the relation after ``from``.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from bastion.authz.errors import ModelIssue, ModelValidationError
from bastion.authz.model._parse import DslSource, Span, parse_dsl_with_source
from bastion.authz.model._validate import model_issues

_AT_RELATION_NAME = frozenset(
    {
        "reserved-relation-keywords",
        "invalid-name",
        "relation-no-entry-point",
        "assignable-relation-must-have-type",
        "non-assignable-relation-must-not-have-types",
        "cycle",
    }
)
_AT_CONDITION = frozenset(
    {"condition-not-used", "invalid-condition", "different-nested-condition-name"}
)
_EDGE = r"[\s\[\](),]"


def _find(pattern: str, text: str, base: Span) -> Span | None:
    match = re.search(pattern, text)
    if match is None:
        return None
    start, end = match.span(match.lastindex or 0)
    return Span(base.line, base.column + start, base.column + end)


def locate(issue: ModelIssue, source: DslSource) -> Span | None:  # noqa: PLR0911 - one per anchor
    """Where ``issue`` is in the DSL text described by ``source`` (``None`` if unknown)."""
    if issue.kind == "schema-version-required":
        return Span(0, 0, 0)
    if issue.kind == "invalid-schema":
        return source.schema
    if issue.kind in _AT_CONDITION:
        return source.conditions.get(issue.symbol or "")
    if issue.relation is None:
        return source.types.get(issue.type_name or "")
    relation = source.relations.get((issue.type_name or "", issue.relation))
    if relation is None:
        return source.types.get(issue.type_name or "")
    if issue.kind in _AT_RELATION_NAME or not issue.symbol:
        return relation.name
    if issue.kind == "tupleuserset-not-direct":
        pattern = rf"\bfrom\s+({re.escape(issue.symbol)})(?={_EDGE}|$)"
    else:
        pattern = rf"(?:^|(?<={_EDGE}))({_words(issue.symbol)})(?={_EDGE}|$)"
    return _find(pattern, relation.text, relation.expression) or relation.name


def _words(symbol: str) -> str:
    return r"\s+".join(re.escape(word) for word in symbol.split())


def _located(issue: ModelIssue, source: DslSource) -> ModelIssue:
    span = locate(issue, source)
    if span is None:
        return issue
    return dataclasses.replace(issue, line=span.line, column=span.column, column_end=span.end)


def validate_dsl(text: str, *, language: bool = True) -> dict[str, Any]:
    """Parse and validate DSL text; returns the model's API JSON.

    ``language`` chooses the rules of OpenFGA's language tooling (the default: what editors and
    ``openfga/language``'s test cases expect) or, if false, of its server at model write (see
    :func:`~bastion.authz.model.model_issues`).

    Raises :class:`~bastion.authz.errors.DslSyntaxError` if the text does not parse, and
    :class:`~bastion.authz.errors.ModelValidationError` whose issues carry their line and
    columns if the model breaks a semantic rule.
    """
    model, source = parse_dsl_with_source(text)
    issues = model_issues(model, language=language)
    if issues:
        raise ModelValidationError([_located(issue, source) for issue in issues])
    return model
