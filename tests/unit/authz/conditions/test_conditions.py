"""Conditions: compile-time checks, OpenFGA's context rules, every parameter type, bounds."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest

from bastion.authz.conditions import (
    MAX_COLLECTION_ITEMS,
    CompiledCondition,
    ParameterType,
    compile_condition,
)
from bastion.authz.errors import ConditionError, ValidationError


def _type(name: str) -> dict[str, Any]:
    return ParameterType.from_dsl(name).to_json()


def condition(expression: str, **parameters: str) -> CompiledCondition:
    return compile_condition(
        {
            "name": "cond",
            "expression": expression,
            "parameters": {name: _type(kind) for name, kind in parameters.items()},
        }
    )


# ---------------------------------------------------------------- compile time


def test_condition_error_is_an_openfga_validation_error() -> None:
    with pytest.raises(ValidationError) as caught:
        condition("x >", x="int")
    assert caught.value.openfga_code == 2000
    assert caught.value.code == "validation_error"
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("expression", "parameters", "fragment"),
    [
        ("x >", {"x": "int"}, "invalid"),
        ("y > 1", {"x": "int"}, "undeclared reference to 'y'"),
        ('x > "a"', {"x": "int"}, "no matching overload"),
        ("x + 1", {"x": "int"}, "must return bool"),
        ("x", {"x": "any"}, "must return bool"),
        ('ip == "10.0.0.1"', {"ip": "ipaddress"}, "no matching overload"),
        ("x != null", {"x": "int"}, "no matching overload"),
    ],
)
def test_bad_expressions_are_refused_at_compile(
    expression: str, parameters: dict[str, str], fragment: str
) -> None:
    with pytest.raises(ConditionError, match=fragment):
        condition(expression, **parameters)


@pytest.mark.parametrize(
    "definition",
    [
        {"name": "c", "expression": "true", "parameters": {"x": {"type_name": "TYPE_NAME_NOPE"}}},
        {"name": "c", "expression": "true", "parameters": {"x": {"type_name": "TYPE_NAME_LIST"}}},
        {
            "name": "c",
            "expression": "true",
            "parameters": {
                "x": {
                    "type_name": "TYPE_NAME_INT",
                    "generic_types": [{"type_name": "TYPE_NAME_INT"}],
                }
            },
        },
        {"name": "c", "expression": "   "},
        {"name": "", "expression": "true"},
        {"name": "c", "expression": "true", "parameters": []},
    ],
)
def test_malformed_definitions_are_refused(definition: dict[str, Any]) -> None:
    with pytest.raises(ConditionError):
        compile_condition(definition)


def test_a_condition_without_parameters_compiles() -> None:
    assert compile_condition({"name": "c", "expression": "1 < 2"}).evaluate() is True


# ---------------------------------------------------------------- context rules


def test_tuple_context_wins_over_request_context() -> None:
    cond = condition("x == 1", x="int")
    assert cond.evaluate({"x": 1}, {"x": 2}) is True
    assert cond.evaluate({"x": 2}, {"x": 1}) is False


def test_request_context_fills_what_the_tuple_lacks() -> None:
    cond = condition("x < y", x="int", y="int")
    assert cond.evaluate({"x": 1}, {"y": 2}) is True


def test_undeclared_keys_are_ignored() -> None:
    cond = condition("x == 1", x="int")
    assert cond.evaluate({"x": 1, "other": object()}, {"more": "ignored"}) is True


def test_a_missing_parameter_is_an_error_not_a_deny() -> None:
    # Even where the expression could short-circuit without the parameter.
    cond = condition("x == 1 || y == 2", x="int", y="int")
    with pytest.raises(ConditionError, match="missing context parameters: y"):
        cond.evaluate({"x": 1}, None)
    with pytest.raises(ConditionError, match="missing context parameters: x, y"):
        cond.evaluate(None, None)


def test_an_evaluation_error_is_raised() -> None:
    cond = condition('m["absent"] == 1', m="map<int>")
    with pytest.raises(ConditionError, match="evaluation failed"):
        cond.evaluate({"m": {"k": 1}})
    division = condition("10 / x > 1", x="int")
    with pytest.raises(ConditionError, match="evaluation failed"):
        division.evaluate({"x": 0})


# ---------------------------------------------------------------- parameter types


@pytest.mark.parametrize(
    ("kind", "expression", "value", "expected"),
    [
        ("bool", "p", True, True),
        ("bool", "p", False, False),
        ("string", 'p.startsWith("ab") && p.matches("^a.c$")', "abc", True),
        ("int", "p > 10", 11, True),
        ("int", "p > 10", "11", True),
        ("int", "p > 10", 11.0, True),
        ("int", "p == -9223372036854775808", -(2**63), True),
        ("uint", "p > 10u", 11, True),
        ("uint", "p == 18446744073709551615u", 2**64 - 1, True),
        ("uint", "p > 10u", "1e1", False),
        ("double", "p > 1.5", 1.75, True),
        ("double", "p > 1.5", 2, True),
        ("double", "p > 1.5", "1.25", False),
        ("bytes", 'p == b"hello"', "aGVsbG8=", True),
        ("duration", 'p == duration("90m")', "1h30m", True),
        ("duration", 'p == duration("1500ms")', "1.5s", True),
        ("duration", 'p < duration("0s")', "-5m", True),
        ("duration", 'p == duration("0s")', "0", True),
        ("timestamp", 'p == timestamp("2024-01-01T00:00:00Z")', "2024-01-01T01:00:00+01:00", True),
        ("timestamp", 'p > timestamp("2024-01-01T00:00:00Z")', "2024-01-01T00:00:00.5Z", True),
        ("list<string>", '"b" in p && p.size() == 2 && p.all(x, x != "")', ["a", "b"], True),
        ("list<int>", "p.exists(x, x > 2)", [1, "3"], True),
        ("map<string>", 'p["k"] == "v" && "k" in p', {"k": "v"}, True),
        ("map<list<int>>", 'p["k"][1] == 2', {"k": [1, 2]}, True),
        ("ipaddress", 'p.in_cidr("10.0.0.0/8")', "10.1.2.3", True),
        ("ipaddress", 'p.in_cidr("10.0.0.0/8")', "11.1.2.3", False),
        ("ipaddress", 'p.in_cidr("2001:db8::/32")', "2001:db8::1", True),
        ("ipaddress", 'p.in_cidr("10.9.9.9/8")', "10.1.2.3", True),
        ("ipaddress", 'p == ipaddress("2001:db8::1")', "2001:0db8:0:0:0:0:0:1", True),
        ("ipaddress", 'p != null && p != ipaddress("192.0.0.1")', "192.0.0.2", True),
        ("list<ipaddress>", 'p.exists(a, a.in_cidr("10.0.0.0/8"))', ["1.1.1.1", "10.0.0.1"], True),
        ("any", "p == 3", 3, True),
    ],
)
def test_parameter_types(kind: str, expression: str, value: Any, expected: bool) -> None:
    assert condition(expression, p=kind).evaluate({"p": value}) is expected


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("bool", "true"),
        ("bool", 1),
        ("string", 5),
        ("int", 1.5),
        ("int", "1.5"),
        ("int", True),
        ("int", "ten"),
        ("int", " 1"),
        ("int", 2**63),
        ("int", None),
        ("uint", -1),
        ("uint", 2**64),
        ("double", "nan"),
        ("double", float("inf")),
        ("double", False),
        ("bytes", "not base64!"),
        ("bytes", 3),
        ("duration", "1d"),
        ("duration", "10"),
        ("duration", ""),
        ("duration", 60),
        ("duration", "1h-5m"),
        ("duration", "3000000h"),
        ("timestamp", "2024-01-01"),
        ("timestamp", "2024-01-01T00:00:00"),
        ("timestamp", "2024-01-01 00:00:00Z"),
        ("timestamp", "2024-02-30T00:00:00Z"),
        ("timestamp", 1704067200),
        ("list<int>", "1,2"),
        ("list<int>", [1, "x"]),
        ("map<int>", [1]),
        ("map<int>", {"k": "x"}),
        ("ipaddress", "10.0.0.256"),
        ("ipaddress", "10.0.0.0/8"),
        ("ipaddress", 167772161),
    ],
)
def test_unconvertible_values_are_errors(kind: str, value: Any) -> None:
    cond = condition("true", p=kind)
    with pytest.raises(ConditionError, match="parameter 'p'"):
        cond.evaluate({"p": value})


def test_a_malformed_cidr_is_an_evaluation_error() -> None:
    cond = condition('p.in_cidr("not-a-cidr")', p="ipaddress")
    with pytest.raises(ConditionError, match="evaluation failed"):
        cond.evaluate({"p": "10.0.0.1"})


def test_native_python_values_are_accepted_in_process() -> None:
    cond = condition(
        "t + d > now && b == b'x'", t="timestamp", d="duration", now="timestamp", b="bytes"
    )
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    context = {"t": start, "d": dt.timedelta(hours=1), "b": b"x"}
    assert cond.evaluate(context, {"now": start + dt.timedelta(minutes=59)}) is True
    naive = condition("t == t", t="timestamp")
    with pytest.raises(ConditionError):
        naive.evaluate({"t": dt.datetime(2024, 1, 1)})  # noqa: DTZ001 - the point of the test


# ---------------------------------------------------------------- expiring grants


def test_an_expiring_grant_holds_until_it_expires() -> None:
    grant = condition(
        "current_time < grant_time + grant_duration",
        current_time="timestamp",
        grant_duration="duration",
        grant_time="timestamp",
    )
    stored = {"grant_time": "2024-05-01T10:00:00Z", "grant_duration": "1h"}
    assert grant.evaluate(stored, {"current_time": "2024-05-01T10:59:59Z"}) is True
    assert grant.evaluate(stored, {"current_time": "2024-05-01T11:00:00Z"}) is False
    assert grant.evaluate(stored, {"current_time": "2024-05-02T00:00:00Z"}) is False


def test_a_client_cannot_extend_a_grant_through_the_request_context() -> None:
    # The stored tuple context wins over the request's: a client's own grant_duration is ignored.
    grant = condition(
        "current_time < grant_time + grant_duration",
        current_time="timestamp",
        grant_duration="duration",
        grant_time="timestamp",
    )
    stored = {"grant_time": "2024-05-01T10:00:00Z", "grant_duration": "1h"}
    forged = {"current_time": "2024-05-01T12:00:00Z", "grant_duration": "100h"}
    assert grant.evaluate(stored, forged) is False


# ---------------------------------------------------------------- bounds and threads


def test_oversized_collections_are_refused_before_evaluation() -> None:
    cond = condition('"x" in p', p="list<string>")
    assert cond.evaluate({"p": ["a"] * MAX_COLLECTION_ITEMS}) is False
    with pytest.raises(ConditionError, match="more than"):
        cond.evaluate({"p": ["a"] * (MAX_COLLECTION_ITEMS + 1)})
    nested = condition('"x" in p', p="map<list<string>>")
    with pytest.raises(ConditionError, match="more than"):
        nested.evaluate({"p": {str(i): ["a"] * 10 for i in range(100)}})


def test_quadratic_comprehensions_hit_the_iteration_budget() -> None:
    cond = condition("p.all(a, p.all(b, a == b || a != b))", p="list<int>")
    assert cond.evaluate({"p": list(range(50))}) is True
    with pytest.raises(ConditionError, match="evaluation failed"):
        cond.evaluate({"p": list(range(500))})


def test_deeply_nested_context_is_refused_without_recursion() -> None:
    deep: Any = "x"
    for _ in range(100_000):
        deep = [deep]
    cond = condition("true", p="any")
    with pytest.raises(ConditionError, match="more than"):
        cond.evaluate({"p": deep})


def test_a_compiled_condition_is_safe_to_share_between_threads() -> None:
    cond = condition("x % 2 == 0", x="int")
    failures: list[int] = []

    def work(offset: int) -> None:
        failures.extend(
            value
            for value in range(offset, offset + 300)
            if cond.evaluate({"x": value}) is not (value % 2 == 0)
        )

    threads = [threading.Thread(target=work, args=(n * 1000,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


# ---------------------------------------------------------------- parameter type syntax


@pytest.mark.parametrize(
    "text", ["int", "uint", "bytes", "any", "list<string>", "map<list<ipaddress>>", "timestamp"]
)
def test_parameter_types_round_trip(text: str) -> None:
    kind = ParameterType.from_dsl(text)
    assert kind.to_dsl() == text
    assert ParameterType.from_json(kind.to_json()) == kind


@pytest.mark.parametrize("text", ["list", "int<string>", "float", "map<>", "List<int>"])
def test_bad_parameter_types(text: str) -> None:
    with pytest.raises(ValueError, match="type"):
        ParameterType.from_dsl(text)


def test_hostile_generic_nesting_is_refused() -> None:
    kind: dict[str, Any] = {"type_name": "TYPE_NAME_INT"}
    for _ in range(10_000):
        kind = {"type_name": "TYPE_NAME_LIST", "generic_types": [kind]}
    with pytest.raises(ConditionError, match="nest deeper"):
        compile_condition({"name": "c", "expression": "true", "parameters": {"p": kind}})
    with pytest.raises(ValueError, match="nest deeper"):
        ParameterType.from_dsl("list<" * 100 + "int" + ">" * 100)
