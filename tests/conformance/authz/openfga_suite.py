"""Loading OpenFGA's consolidated conformance suite, shared by the engine and HTTP runners.

The harness rules are in ``../shared/conformance/README.md``; this module only reads the file
and converts its values: test cases, models (DSL to JSON with Bastion's parser), tuples, and
OpenFGA's numeric error codes to the names the HTTP API answers.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from bastion.authz.model import parse_dsl
from bastion.authz.tuples import Tuple

__all__ = [
    "CONTEXTUAL_RERUN_LIMIT",
    "ERROR_NAMES",
    "KINDS",
    "SUITE",
    "load_tests",
    "parse_model",
    "reruns_contextually",
    "to_tuple",
]

SUITE = (
    Path(__file__).resolve().parents[4] / "shared/conformance/openfga/consolidated_1_1_tests.yaml"
)
#: A single-stage test with at most this many tuples runs again with them all contextual.
CONTEXTUAL_RERUN_LIMIT = 100
KINDS = ("checkAssertions", "listObjectsAssertions", "listUsersAssertions")
#: OpenFGA's numeric error codes in the suite, by the name its HTTP API answers.
ERROR_NAMES = {
    2000: "validation_error",
    2002: "authorization_model_resolution_too_complex",
    2021: "type_not_found",
    2022: "relation_not_found",
    2027: "invalid_tuple",
}


def load_yaml(path: Path) -> Any:
    """``yaml.safe_load`` through libyaml (PyYAML's C loader, same types): the suite's ~1 MB
    took ~3 s in the pure-Python loader on a slow host, in each test process."""
    return yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)


@functools.cache
def load_tests() -> tuple[dict[str, Any], ...]:
    """Every test of the suite (empty when the shared folder is absent), read once a process."""
    if not SUITE.exists():
        return ()
    return tuple(load_yaml(SUITE)["tests"])


@functools.cache
def _parse(dsl: str) -> Mapping[str, Any]:
    return parse_dsl(dsl)


def parse_model(dsl: str) -> dict[str, Any]:
    """The model's JSON form (a fresh copy), by Bastion's DSL parser."""
    return dict(_parse(dsl))


def to_tuple(raw: Mapping[str, Any]) -> Tuple:
    condition = raw.get("condition") or {}
    return Tuple(
        object=raw["object"],
        relation=raw["relation"],
        user=raw["user"],
        condition=condition.get("name"),
        context=condition.get("context"),
    )


def reruns_contextually(test: Mapping[str, Any]) -> bool:
    stages = test["stages"]
    return len(stages) == 1 and len(stages[0].get("tuples") or ()) <= CONTEXTUAL_RERUN_LIMIT
