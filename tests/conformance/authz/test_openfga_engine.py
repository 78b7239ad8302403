"""OpenFGA's own conformance suite (consolidated_1_1_tests.yaml), run on Bastion's engine.

Harness rules (``../shared/conformance/README.md``, OpenFGA's ``assets/tests`` runner): all
stages of a test share one store; each stage writes a new model and its tuples, which accumulate;
tuples invalid under the current model are ignored; a single-stage test with at most 100 tuples
runs a second time with every tuple sent as a contextual tuple; list results are compared
ignoring order and every listed object or user must also check as allowed; an assertion with an
``errorCode`` expects that OpenFGA error code.

One pytest test per (test, stage, assertion kind, variant).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.conformance.authz.openfga_suite import load_yaml

from bastion.authz.engine import Engine
from bastion.authz.errors import AuthzError
from bastion.authz.model import parse_dsl
from bastion.authz.tuples import MemoryTupleIndex, Tuple

SUITE = (
    Path(__file__).resolve().parents[4] / "shared/conformance/openfga/consolidated_1_1_tests.yaml"
)
CONTEXTUAL_RERUN_LIMIT = 100

KINDS = ("checkAssertions", "listObjectsAssertions", "listUsersAssertions")


def _load() -> list[dict[str, Any]]:
    if not SUITE.exists():
        return []
    return list(load_yaml(SUITE)["tests"])


TESTS = _load()


def _cases() -> list[Any]:
    cases = []
    for test in TESTS:
        stages = test["stages"]
        rerun = len(stages) == 1 and len(stages[0].get("tuples") or ()) <= CONTEXTUAL_RERUN_LIMIT
        for index, stage in enumerate(stages):
            for kind in KINDS:
                if not stage.get(kind):
                    continue
                variants = ("stored", "contextual") if rerun else ("stored",)
                cases.extend(
                    pytest.param(
                        test["name"],
                        index,
                        kind,
                        variant,
                        id=f"{test['name']}-{index}-{kind}-{variant}",
                    )
                    for variant in variants
                )
    return cases


# ------------------------------------------------------------------------- model conversion
@functools.cache
def parse_model(dsl: str) -> dict[str, Any]:
    """The model's JSON form, by Bastion's own DSL parser (the suite's models are DSL)."""
    return dict(parse_dsl(dsl))


# ------------------------------------------------------------------------- store per stage
def to_tuple(raw: Mapping[str, Any]) -> Tuple:
    condition = raw.get("condition") or {}
    return Tuple(
        object=raw["object"],
        relation=raw["relation"],
        user=raw["user"],
        condition=condition.get("name"),
        context=condition.get("context"),
    )


@dataclass
class Stage:
    engine: Engine
    index: MemoryTupleIndex
    stage_tuples: list[Tuple]
    ignored: int


@functools.cache
def stage_state(name: str, stage_index: int) -> Stage:
    test = next(t for t in TESTS if t["name"] == name)
    index = MemoryTupleIndex()
    ignored = 0
    engine: Engine | None = None
    stage_tuples: list[Tuple] = []
    for stage in test["stages"][: stage_index + 1]:
        engine = Engine(parse_model(stage["model"]))
        stage_tuples = [to_tuple(raw) for raw in stage.get("tuples") or ()]
        for t in stage_tuples:
            try:
                engine.validate_tuple(t)
            except AuthzError:
                ignored += 1  # the harness ignores tuples the current model rejects
                continue
            index.add(t)
    assert engine is not None
    return Stage(engine, index, stage_tuples, ignored)


def _source_and_contextual(
    state: Stage, assertion: Mapping[str, Any], variant: str
) -> tuple[MemoryTupleIndex, list[Tuple]]:
    contextual = [to_tuple(raw) for raw in assertion.get("contextualTuples") or ()]
    if variant == "stored":
        return state.index, contextual
    return MemoryTupleIndex(), [*state.stage_tuples, *contextual]


def _context(assertion: Mapping[str, Any]) -> dict[str, Any] | None:
    return assertion.get("context")


# ------------------------------------------------------------------------- the runner
@pytest.mark.parametrize(("name", "stage_index", "kind", "variant"), _cases())
def test_openfga_conformance(name: str, stage_index: int, kind: str, variant: str) -> None:
    test = next(t for t in TESTS if t["name"] == name)
    stage = test["stages"][stage_index]
    state = stage_state(name, stage_index)
    failures: list[str] = []
    for number, assertion in enumerate(stage[kind]):
        try:
            problem = RUNNERS[kind](state, assertion, variant)
        except AuthzError as error:
            problem = f"unexpected error {error.openfga_code}: {error.detail}"
        if problem:
            failures.append(
                f"#{number} {assertion.get('tuple') or assertion.get('request')}: {problem}"
            )
    assert not failures, "\n".join(failures)


def _expect_error(assertion: Mapping[str, Any], call: Any) -> str | None:
    """Run ``call``; compare with an expected error code. Returns a problem or None."""
    expected = assertion.get("errorCode")
    try:
        outcome = call()
    except AuthzError as error:
        if expected is None:
            return f"unexpected error {error.openfga_code}: {error.detail}"
        if error.openfga_code != expected:
            return f"error {error.openfga_code} ({error.detail}), expected {expected}"
        return None
    if expected is not None:
        return f"expected error {expected}, got {outcome!r}"
    return _NO_ERROR


_NO_ERROR = "__no_error__"


def run_check(state: Stage, assertion: Mapping[str, Any], variant: str) -> str | None:
    source, contextual = _source_and_contextual(state, assertion, variant)
    key = assertion["tuple"]
    results: list[bool] = []

    def call() -> bool:
        result = state.engine.check(
            source,
            key["object"],
            key["relation"],
            key["user"],
            context=_context(assertion),
            contextual_tuples=contextual,
        )
        results.append(result.allowed)
        return result.allowed

    problem = _expect_error(assertion, call)
    if problem != _NO_ERROR:
        return problem
    if results[0] != assertion["expectation"]:
        return f"allowed={results[0]}, expected {assertion['expectation']}"
    return None


def run_list_objects(state: Stage, assertion: Mapping[str, Any], variant: str) -> str | None:
    source, contextual = _source_and_contextual(state, assertion, variant)
    request = assertion["request"]
    pages: list[tuple[str, ...]] = []

    def call() -> tuple[str, ...]:
        page = state.engine.list_objects(
            source,
            request["type"],
            request["relation"],
            request["user"],
            context=_context(assertion) or request.get("context"),
            contextual_tuples=contextual,
        )
        assert page.continuation_token is None
        pages.append(page.items)
        return page.items

    problem = _expect_error(assertion, call)
    if problem != _NO_ERROR:
        return problem
    got = set(pages[0])
    expected = set(assertion.get("expectation") or ())
    if got != expected:
        return f"got {sorted(got)}, expected {sorted(expected)}"
    for obj in got:
        check = state.engine.check(
            source,
            obj,
            request["relation"],
            request["user"],
            context=_context(assertion),
            contextual_tuples=contextual,
        )
        if not check.allowed:
            return f"listed {obj} does not check as allowed"
    return None


def run_list_users(state: Stage, assertion: Mapping[str, Any], variant: str) -> str | None:
    source, contextual = _source_and_contextual(state, assertion, variant)
    request = assertion["request"]
    pages: list[tuple[str, ...]] = []

    def call() -> tuple[str, ...]:
        page = state.engine.list_users(
            source,
            request["object"],
            request["relation"],
            request["filters"],
            context=_context(assertion),
            contextual_tuples=contextual,
        )
        assert page.continuation_token is None
        pages.append(page.items)
        return page.items

    problem = _expect_error(assertion, call)
    if problem != _NO_ERROR:
        return problem
    got = set(pages[0])
    expected = set(assertion.get("expectation") or ())
    if got != expected:
        return f"got {sorted(got)}, expected {sorted(expected)}"
    for user in got:
        check = state.engine.check(
            source,
            request["object"],
            request["relation"],
            user,
            context=_context(assertion),
            contextual_tuples=contextual,
        )
        if not check.allowed:
            return f"listed {user} does not check as allowed"
    return None


RUNNERS = {
    "checkAssertions": run_check,
    "listObjectsAssertions": run_list_objects,
    "listUsersAssertions": run_list_users,
}


def test_suite_is_present_and_counted() -> None:
    """The suite file is there and holds what the README says (137 tests, 925 assertions)."""
    assert len(TESTS) == 137
    total = sum(
        len(stage.get(kind) or ()) for t in TESTS for stage in t["stages"] for kind in KINDS
    )
    assert total == 925
