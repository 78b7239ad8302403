"""The OpenFGA DSL (schema 1.1) parser: text -> the model's API JSON, plus a source map.

The grammar follows OpenFGA's language (``openfga/language``)::

    model
      schema 1.1                                   # comments: '#' to the end of the line
    type document
      relations
        define viewer: [user, user:*, group#member, user with cond] or editor
        define can_view: (viewer and allowed) but not blocked
        define reader: reader from parent
    condition cond(p: int, q: list<string>) {
      p < 10 && "x" in q
    }

Operators in one expression are all ``or``, all ``and``, or one ``but not``; mixing needs
parentheses. A direct type list ``[...]`` may only start an expression (at the top or inside
parentheses), once per relation. Modules (``module``, ``extend``) are not supported.
Indentation is free; a relation's type list may span lines. Errors raise
:class:`~bastion.authz.errors.DslSyntaxError` with zero-based line and column.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from typing import Any

from bastion.authz.errors import DslSyntaxError

_NAME = re.compile(r"[^\s:#,\[\]()<>{}*@\"'`]+")
_VERSION = re.compile(r"\d+\.\d+(?![^\s#])")
_SCALAR_TYPES = frozenset(
    {
        "bool",
        "string",
        "int",
        "uint",
        "double",
        "bytes",
        "duration",
        "timestamp",
        "ipaddress",
        "any",
    }
)
_CONTAINER_TYPES = frozenset({"list", "map"})
#: Words OpenFGA's grammar reads as types inside a condition's parameter list, never as names.
_TYPE_KEYWORDS = frozenset(
    {"bool", "string", "int", "uint", "double", "duration", "timestamp", "ipaddress", "list", "map"}
)
_JSON_TYPE_NAMES = {name: f"TYPE_NAME_{name.upper()}" for name in _SCALAR_TYPES | _CONTAINER_TYPES}
_OPERATORS = {"or": "union", "and": "intersection", "but not": "difference"}
#: Parentheses may nest this deep (bounds the parser's recursion on hostile input).
MAX_NESTING = 32


@dataclass(frozen=True, slots=True)
class Span:
    """A zero-based position in the DSL text: one line, columns ``[column, end)``."""

    line: int
    column: int
    end: int


@dataclass(slots=True)
class RelationSource:
    name: Span
    expression: Span
    text: str  # the expression as written, for locating the symbols it mentions


@dataclass(slots=True)
class DslSource:
    """Where the parts of a parsed model were written (the first occurrence of each)."""

    schema: Span | None = None
    types: dict[str, Span] = field(default_factory=dict)
    relations: dict[tuple[str, str], RelationSource] = field(default_factory=dict)
    conditions: dict[str, Span] = field(default_factory=dict)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text.replace("\r\n", "\n").replace("\r", "\n")
        self.pos = 0
        self.depth = 0
        self.line_starts = [0] + [i + 1 for i, c in enumerate(self.text) if c == "\n"]
        self.source = DslSource()

    # ------------------------------------------------------------ positions and errors

    def where(self, pos: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.line_starts, pos) - 1
        return line, pos - self.line_starts[line]

    def span(self, start: int, end: int) -> Span:
        line, column = self.where(start)
        return Span(line, column, column + (end - start))

    def error(self, message: str, pos: int | None = None) -> DslSyntaxError:
        at = self.pos if pos is None else pos
        line, column = self.where(at)
        symbol = self.text[at : at + 1] if at < len(self.text) else "<EOF>"
        return DslSyntaxError(message, line=line, column=column, symbol=symbol)

    # ------------------------------------------------------------ lexical helpers

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_spaces(self) -> int:
        start = self.pos
        while self.peek() in (" ", "\t"):
            self.pos += 1
        return self.pos - start

    def skip_space_and_newlines(self) -> None:
        while self.peek() in (" ", "\t", "\n"):
            self.pos += 1

    def skip_blank_lines(self) -> None:
        """Move to the first token of the next line that holds more than space and comments."""
        while True:
            self.skip_spaces()
            if self.peek() == "#":
                self.skip_comment()
            if self.peek() != "\n":
                return
            self.pos += 1

    def skip_comment(self) -> None:
        end = self.text.find("\n", self.pos)
        self.pos = len(self.text) if end < 0 else end

    def end_line(self) -> None:
        had_space = self.skip_spaces()
        if self.peek() == "#" and (had_space or self.pos == 0 or self.text[self.pos - 1] == "\n"):
            self.skip_comment()
        if self.peek() not in ("", "\n"):
            raise self.error(f"unexpected input '{self.word_at()}', expected the end of the line")
        if self.peek() == "\n":
            self.pos += 1

    def word_at(self) -> str:
        match = re.compile(r"\S+").match(self.text, self.pos)
        return match.group(0) if match else "<EOF>"

    def keyword(self, word: str) -> bool:
        """Consume ``word`` if it is the next token (followed by a space, newline or end)."""
        end = self.pos + len(word)
        if self.text.startswith(word, self.pos) and (
            end == len(self.text) or self.text[end] in " \t\n#"
        ):
            self.pos = end
            return True
        return False

    def name(self, what: str) -> tuple[str, int]:
        match = _NAME.match(self.text, self.pos)
        if match is None:
            raise self.error(f"expected {what}, found '{self.word_at()}'")
        self.pos = match.end()
        return match.group(0), match.start()

    def require_space(self, after: str) -> None:
        if not self.skip_spaces():
            raise self.error(f"expected a space after '{after}'")

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise self.error(f"expected '{char}', found '{self.word_at()}'")
        self.pos += 1

    # ------------------------------------------------------------ document

    def header(self) -> str:
        """``model`` then ``schema <version>``; returns the version."""
        self.skip_blank_lines()
        if self.keyword("module"):
            raise self.error("modular models (module, extend) are not supported", self.pos - 6)
        if not self.keyword("model"):
            raise self.error(f"expected 'model', found '{self.word_at()}'")
        self.end_line()
        self.skip_blank_lines()
        if not self.keyword("schema"):
            raise self.error(f"expected 'schema', found '{self.word_at()}'")
        self.require_space("schema")
        version = _VERSION.match(self.text, self.pos)
        if version is None:
            raise self.error(f"expected a schema version such as 1.1, found '{self.word_at()}'")
        self.source.schema = self.span(version.start(), version.end())
        self.pos = version.end()
        self.end_line()
        return version.group(0)

    def document(self) -> dict[str, Any]:
        version = self.header()
        types: list[dict[str, Any]] = []
        conditions: dict[str, Any] = {}
        while True:
            self.skip_blank_lines()
            if self.pos >= len(self.text):
                break
            start = self.pos
            if self.keyword("type"):
                if conditions:
                    raise self.error("types must come before conditions", start)
                types.append(self.type_definition())
            elif self.keyword("condition"):
                name, condition = self.condition(conditions)
                conditions[name] = condition
            elif self.keyword("extend"):
                self.skip_spaces()
                if self.keyword("type"):
                    self.skip_spaces()
                raise self.error("extend can only be used in a modular model")
            else:
                raise self.error(f"unexpected input '{self.word_at()}'")
        model: dict[str, Any] = {"schema_version": version, "type_definitions": types}
        if conditions:
            model["conditions"] = conditions
        return model

    # ------------------------------------------------------------ types and relations

    def type_definition(self) -> dict[str, Any]:
        self.require_space("type")
        name, start = self.name("a type name")
        self.source.types.setdefault(name, self.span(start, self.pos))
        self.end_line()
        self.skip_blank_lines()
        relations: dict[str, Any] = {}
        metadata: dict[str, Any] = {}
        if self.keyword("relations"):
            self.end_line()
            while True:
                self.skip_blank_lines()
                if not self.keyword("define"):
                    break
                self.define(name, relations, metadata)
            if not relations:
                raise self.error(f"'relations' of type '{name}' defines no relation")
        return {
            "type": name,
            "relations": relations,
            "metadata": {"relations": metadata} if relations else None,
        }

    def define(self, type_name: str, relations: dict[str, Any], metadata: dict[str, Any]) -> None:
        self.require_space("define")
        relation, start = self.name("a relation name")
        if relation in relations:
            raise self.error(f"'{relation}' is already defined in '{type_name}'", start)
        name_span = self.span(start, self.pos)
        self.skip_spaces()
        self.expect(":")
        self.skip_spaces()
        expression_start = self.pos
        direct: list[list[dict[str, Any]]] = []
        relations[relation] = self.rewrite(direct)
        expression_span = self.span(expression_start, self.pos)
        self.source.relations.setdefault(
            (type_name, relation),
            RelationSource(name_span, expression_span, self.text[expression_start : self.pos]),
        )
        self.end_line()
        metadata[relation] = {"directly_related_user_types": direct[0] if direct else []}

    def rewrite(self, direct: list[list[dict[str, Any]]]) -> dict[str, Any]:
        """``first (op part)*`` with a single kind of operator."""
        if self.peek() == "[":
            if direct:
                raise self.error("a relation may have only one list of directly related types")
            direct.append(self.direct_types())
            first: dict[str, Any] = {"this": {}}
        else:
            first = self.part(direct)
        operator: str | None = None
        children = [first]
        while True:
            save = self.pos
            if not self.skip_spaces():
                break
            found = next((op for op in _OPERATORS if self.keyword(op)), None)
            if found is None:
                self.pos = save
                break
            if operator is not None and (found != operator or found == "but not"):
                # Located where OpenFGA's grammar stops: at the space before the operator at
                # the top of a definition, at the operator inside parentheses.
                raise self.error(
                    f"'{found}' cannot follow '{operator}' without parentheses",
                    self.pos - len(found) if self.depth else save,
                )
            operator = found
            self.require_space(found)
            if self.peek() == "[":
                raise self.error("a list of directly related types may only start a definition")
            children.append(self.part(direct))
        if operator is None:
            return first
        if operator == "but not":
            return {"difference": {"base": children[0], "subtract": children[1]}}
        return {_OPERATORS[operator]: {"child": children}}

    def part(self, direct: list[list[dict[str, Any]]]) -> dict[str, Any]:
        if self.peek() == "(":
            if self.depth >= MAX_NESTING:
                raise self.error(f"parentheses nest deeper than {MAX_NESTING} levels")
            self.depth += 1
            self.pos += 1
            self.skip_spaces()
            inner = self.rewrite(direct)
            self.skip_spaces()
            self.expect(")")
            self.depth -= 1
            return inner
        if self.peek() in _OPERATOR_STARTS and any(
            self.text.startswith(op + " ", self.pos) for op in _OPERATORS
        ):
            raise self.error(f"expected a relation, found '{self.word_at()}'")
        relation, _ = self.name("a relation")
        save = self.pos
        if self.skip_spaces() and self.keyword("from"):
            self.require_space("from")
            tupleset, _ = self.name("a relation after 'from'")
            return {
                "tupleToUserset": {
                    "tupleset": {"relation": tupleset},
                    "computedUserset": {"relation": relation},
                }
            }
        self.pos = save
        return {"computedUserset": {"relation": relation}}

    def direct_types(self) -> list[dict[str, Any]]:
        self.expect("[")
        entries: list[dict[str, Any]] = []
        while True:
            self.skip_space_and_newlines()
            entries.append(self.type_restriction())
            self.skip_space_and_newlines()
            if self.peek() == ",":
                self.pos += 1
                continue
            self.expect("]")
            return entries

    def type_restriction(self) -> dict[str, Any]:
        type_name, _ = self.name("a type")
        entry: dict[str, Any] = {"type": type_name}
        if self.peek() == ":":
            self.pos += 1
            self.expect("*")
            entry["wildcard"] = {}
        elif self.peek() == "#":
            self.pos += 1
            entry["relation"] = self.name("a relation after '#'")[0]
        save = self.pos
        if self.skip_spaces() and self.keyword("with"):
            self.require_space("with")
            entry["condition"] = self.name("a condition name")[0]
        else:
            self.pos = save
        return entry

    # ------------------------------------------------------------ conditions

    def condition(self, known: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self.require_space("condition")
        name, start = self.name("a condition name")
        if name in known:
            raise self.error(f"condition '{name}' is already defined in the model", start)
        self.source.conditions.setdefault(name, self.span(start, self.pos))
        self.skip_spaces()
        self.expect("(")
        parameters: dict[str, Any] = {}
        while True:
            self.skip_space_and_newlines()
            parameter, at = self.name("a parameter name")
            if parameter in _TYPE_KEYWORDS:
                raise self.error(f"expected a parameter name, found the type '{parameter}'", at)
            if parameter in parameters:
                raise self.error(
                    f"parameter '{parameter}' is already defined in the condition '{name}'", at
                )
            self.skip_spaces()
            self.expect(":")
            self.skip_spaces()
            parameters[parameter] = self.parameter_type()
            self.skip_space_and_newlines()
            if self.peek() == ",":
                self.pos += 1
                continue
            self.expect(")")
            break
        self.skip_spaces()
        self.expect("{")
        expression = self.cel_body()
        self.end_line()
        return name, {"name": name, "expression": expression, "parameters": parameters}

    def parameter_type(self) -> dict[str, Any]:
        match = re.compile(r"[a-z]+").match(self.text, self.pos)
        word = match.group(0) if match else ""
        if word in _SCALAR_TYPES:
            self.pos += len(word)
            return {"type_name": _JSON_TYPE_NAMES[word]}
        if word not in _CONTAINER_TYPES:
            raise self.error(f"expected a parameter type, found '{self.word_at()}'")
        self.pos += len(word)
        self.expect("<")
        inner = re.compile(r"[a-z]+").match(self.text, self.pos)
        if inner is None or inner.group(0) not in _SCALAR_TYPES:
            raise self.error(f"{word}<T> takes a scalar type, found '{self.word_at()}'")
        self.pos = inner.end()
        self.expect(">")
        return {
            "type_name": _JSON_TYPE_NAMES[word],
            "generic_types": [{"type_name": _JSON_TYPE_NAMES[inner.group(0)]}],
        }

    def cel_body(self) -> str:
        """The CEL text up to the first ``}`` outside a string literal, as OpenFGA's grammar
        reads it (a CEL map literal cannot close inside a condition there either). CEL's ``//``
        comments stay in the expression; the DSL's ``#`` comments are dropped from it."""
        pieces: list[str] = []
        start = self.pos
        while self.pos < len(self.text):
            char = self.peek()
            if char in "\"'":
                self.skip_cel_string()
                continue
            if char == "#" or self.text.startswith("//", self.pos):
                if char == "#":
                    pieces.append(self.text[start : self.pos])
                self.skip_comment()
                if char == "#":
                    start = self.pos
                continue
            if char == "}":
                pieces.append(self.text[start : self.pos])
                body = "".join(pieces).strip()
                if not body:
                    raise self.error("the condition has no expression")
                self.pos += 1
                return body
            self.pos += 1
        raise self.error("the condition is not closed with '}'")

    def skip_cel_string(self) -> None:
        raw = self.pos > 0 and self.text[self.pos - 1] in "rR"
        quote = self.text[self.pos : self.pos + 3]
        if quote not in ('"""', "'''"):
            quote = self.peek()
        start = self.pos
        self.pos += len(quote)
        while self.pos < len(self.text):
            if not raw and self.peek() == "\\":
                self.pos += 2
                continue
            if self.text.startswith(quote, self.pos):
                self.pos += len(quote)
                return
            if len(quote) == 1 and self.peek() == "\n":
                break
            self.pos += 1
        raise self.error("unterminated string in the condition", start)


_OPERATOR_STARTS = frozenset(op[0] for op in _OPERATORS)


def parse_dsl_with_source(text: str) -> tuple[dict[str, Any], DslSource]:
    """Parse DSL text; returns the model's API JSON and where each part was written."""
    parser = _Parser(text)
    return parser.document(), parser.source


def parse_dsl(text: str) -> dict[str, Any]:
    """Parse OpenFGA DSL text (schema 1.1) into the model's API JSON form.

    Raises :class:`~bastion.authz.errors.DslSyntaxError` (zero-based line and column) if the
    text does not parse. The result is not validated: see ``validate_model``.
    """
    return parse_dsl_with_source(text)[0]
