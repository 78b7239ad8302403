"""Only parameterized SQL: no query text is ever built from strings at run time.

SQL injection needs attacker text inside the statement. Every statement is either built with
SQLAlchemy's expression language (values become bound parameters) or is a constant string.
This test walks every module under src/ and fails on a call to ``text()``,
``exec_driver_sql()`` or ``.execute()`` whose statement is an f-string, a ``%`` / ``+``
expression involving a string, a ``.format()`` or a ``.join()`` call. (A string built elsewhere
and passed by name is not caught; review owns that case.)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[3] / "src"
SQL_CALLS = frozenset({"text", "exec_driver_sql", "execute"})
STRING_BUILDERS = frozenset({"format", "join", "format_map"})


def _is_dynamic_string(node: ast.expr) -> bool:
    """Whether ``node`` builds a string at run time."""
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(part, ast.FormattedValue) for part in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mod):
        return any(_is_stringish(side) for side in (node.left, node.right))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr in STRING_BUILDERS
    return False


def _is_stringish(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    return isinstance(node, ast.JoinedStr) or _is_dynamic_string(node)


def _call_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def violations(source: str, filename: str = "<snippet>") -> list[str]:
    """``file:line`` of every SQL call whose statement is built from strings."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Call) or _call_name(node) not in SQL_CALLS:
            continue
        statements = list(node.args[:1]) + [
            kw.value for kw in node.keywords if kw.arg in {"statement", "text"}
        ]
        if any(_is_dynamic_string(arg) for arg in statements):
            found.append(f"{filename}:{node.lineno}")
    return found


def test_no_sql_is_built_from_strings_in_src() -> None:
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 10, "the walk must see the source tree"
    found = [v for f in files for v in violations(f.read_text("utf-8"), str(f.relative_to(SRC)))]
    assert found == [], "SQL built from strings (use bound parameters):\n" + "\n".join(found)


@pytest.mark.parametrize(
    "snippet",
    [
        "text(f\"SELECT * FROM users WHERE name = '{name}'\")",
        'sa.text("SELECT * FROM users WHERE id = " + user_id)',
        'conn.execute("DELETE FROM t WHERE id = %s" % user_id)',
        'conn.exec_driver_sql("SELECT {}".format(column))',
        'session.execute(text(" ".join(parts)))',
        'await conn.execute(statement=f"DROP TABLE {table}")',
        'cursor.execute(prefix + "WHERE x = 1")',
    ],
)
def test_checker_catches_string_built_sql(snippet: str) -> None:
    assert violations(snippet) == ["<snippet>:1"]


@pytest.mark.parametrize(
    "snippet",
    [
        'text("SELECT 1")',
        'conn.execute(text("SELECT * FROM t WHERE id = :id"), {"id": user_id})',
        "conn.execute(select(users).where(users.c.name == name))",
        'conn.exec_driver_sql("PRAGMA journal_mode=WAL")',
        "cursor.execute(pragma)",
        'log.info(f"not sql {x}")',
        'text("SELECT 1 " "FROM t")',
    ],
)
def test_checker_accepts_constant_or_parameterized_sql(snippet: str) -> None:
    assert violations(snippet) == []
