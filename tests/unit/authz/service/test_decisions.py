"""The decision log's event details: built without scrubbing when they are already what
scrubbing would give, identical to the scrubbed details in every case."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.unit.authz.service.test_service import ListRecorder

from bastion.audit.recorder import MAX_DETAIL_STRING_CHARS, ScrubbedDetails, scrub
from bastion.authz.service import Decision, DecisionLog
from bastion.authz.service._decisions import decision_details
from bastion.clock import FrozenClock

STORE = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
MODEL = "01ARZ3NDEKTSV4RRFFQ69G5FAW"


def _fields(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "store_id": STORE,
        "model_id": MODEL,
        "object": "document:1",
        "relation": "viewer",
        "user": "user:anne",
        "latency_ms": 0.123,
        "source": "api",
    }
    return {**fields, **changes}


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"latency_ms": 0.0},  # integral: an integer, as scrubbing writes it
        {"latency_ms": 12.0},
        {"latency_ms": 3.5},
        {"user": "user:\u00e9l\u00e8ne"},  # not ASCII
        {"object": "document:\x00x"},  # NUL (refused by PostgreSQL)
        {"user": "user:\ud800"},  # a lone surrogate
        {"relation": "r" * (MAX_DETAIL_STRING_CHARS + 1)},  # beyond the recorder's bound
        {"object": "o" * MAX_DETAIL_STRING_CHARS},  # at the bound
        # Each within the bound, together beyond it.
        {"object": "o" * (MAX_DETAIL_STRING_CHARS - 10), "user": "u" * MAX_DETAIL_STRING_CHARS},
        {"latency_ms": float("nan")},
        {"source": "sdk"},
    ],
)
def test_details_are_exactly_the_scrubbed_details(changes: dict[str, Any]) -> None:
    fields = _fields(**changes)
    details = decision_details(**fields)
    expected = scrub(fields)
    assert type(details) is ScrubbedDetails  # the recorder does not scrub it again
    assert dict(details) == dict(expected)
    # Same value types too (1 == 1.0 in Python, not in the stored JSON).
    as_json = json.dumps(details, sort_keys=True, default=str)
    assert as_json == json.dumps(expected, sort_keys=True, default=str)
    with pytest.raises(TypeError, match="read-only"):
        details["user"] = "user:mallory"  # type: ignore[index]


def test_a_denial_is_recorded_with_its_details_ready() -> None:
    recorder = ListRecorder()
    log = DecisionLog(recorder, FrozenClock(), sample_rate=0.0)
    denied = Decision(False, STORE, MODEL, "document:1", "viewer", "user:anne", 2.0, "no")
    assert log.record(denied)
    (event,) = recorder.events
    assert event.type == "authz:check:denied"
    assert event.reason == "no"
    assert type(event.details) is ScrubbedDetails
    assert dict(event.details) == dict(scrub(_fields(latency_ms=2.0)))
    assert event.details["latency_ms"] == 2
    assert type(event.details["latency_ms"]) is int
