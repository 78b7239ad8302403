"""scrub's request-path shortcuts give exactly what ``main`` at ``453fea4`` gave.

``_reference`` is that commit's ``scrub`` (the generic case analysis, one call per member),
kept here verbatim but for names; hypothesis draws details of every kind it handles.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.audit.context import event_from_scope, record_from_scope
from bastion.audit.events import EventType, Outcome
from bastion.audit.recorder import (
    MAX_DETAIL_DEPTH,
    MAX_DETAIL_STRING_CHARS,
    TRUNCATED,
    QueueAuditRecorder,
    ScrubbedDetails,
    clean_text,
    scrub,
)
from bastion.logging import REDACTED, SENSITIVE_KEY


def _reference(value: Any, depth: int = 0) -> Any:
    if depth == 0 and isinstance(value, Mapping):
        return dict(_ref_mapping(value, 0))
    return _ref(value, depth)


def _ref(value: Any, depth: int) -> Any:  # noqa: PLR0911 - main's case analysis
    if isinstance(value, Mapping | list | tuple | set | frozenset) and depth >= MAX_DETAIL_DEPTH:
        return TRUNCATED
    if isinstance(value, Mapping):
        return _ref_mapping(value, depth)
    if isinstance(value, list | tuple | set | frozenset):
        return [_ref(v, depth + 1) for v in value]
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value) if value.is_integer() else value
    if isinstance(value, str):
        return _ref_bounded(value)
    return _ref_bounded(str(value))


def _ref_mapping(value: Mapping[Any, Any], depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, member in value.items():
        name = str(key)
        if SENSITIVE_KEY.search(name):
            out[_ref_bounded(name)] = REDACTED
        else:
            out[_ref_bounded(name)] = _ref(member, depth + 1)
    return out


def _ref_bounded(text: str) -> str:
    if len(text) > MAX_DETAIL_STRING_CHARS:
        text = text[:MAX_DETAIL_STRING_CHARS] + TRUNCATED
    return clean_text(text)


_TEXT = st.one_of(
    st.text(max_size=8),
    st.sampled_from(["password", "api_key", "Token", "fields", "k\x00", "\ud800", "é"]),
    st.builds(
        lambda n: "x" * n, st.integers(MAX_DETAIL_STRING_CHARS - 1, MAX_DETAIL_STRING_CHARS + 2)
    ),
)
_LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), _TEXT, st.dates(), st.uuids()
)
_VALUE = st.recursive(
    _LEAF,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(_TEXT, st.integers()), inner, max_size=3),
    ),
    max_leaves=20,
)
_DETAILS = st.dictionaries(st.one_of(_TEXT, st.integers()), _VALUE, max_size=4)


@settings(max_examples=400, deadline=None)
@given(_DETAILS)
def test_scrub_and_event_from_scope_match_mains_scrub(details: dict[Any, Any]) -> None:
    want = _reference(details)
    scrubbed = scrub(details)
    assert type(scrubbed) is ScrubbedDetails
    assert repr(dict(scrubbed)) == repr(want)  # repr: NaN, and 1 against 1.0 or True
    event = event_from_scope(
        {"type": "http"}, EventType.IDENTITY_PROFILE_UPDATED, Outcome.SUCCESS, details=details
    )
    assert repr(dict(event.details)) == repr(want)
    recorder = QueueAuditRecorder([], queue_size=1, batch_size=1)
    record_from_scope(
        recorder,
        {"type": "http"},
        EventType.IDENTITY_PROFILE_UPDATED,
        Outcome.SUCCESS,
        details=details,
    )
    [built], _ = recorder._events(list(recorder._queue._queue))
    assert repr(dict(built.details)) == repr(want)


def test_a_deep_list_is_truncated_at_the_same_depth() -> None:
    details: dict[str, Any] = {"l": [[[[[[[[["x"]]]]]]]]]}
    assert repr(dict(scrub(details))) == repr(_reference(details))
    assert TRUNCATED in repr(dict(scrub(details)))
