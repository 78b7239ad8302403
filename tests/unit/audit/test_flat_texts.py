"""``flat_texts``: the details' JSON column text and the canonical tail, as the encoders write
them (``json.dumps`` and :func:`canonical_tail`), or None; and the database sink's link made
with it is the link made without it (content parameters and tail, shared batch texts)."""

from __future__ import annotations

import json
import math
import sys
import threading
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import create_async_engine

import bastion.storage  # noqa: F401 - registers sqlite+inline
from bastion.audit import chain
from bastion.audit.chain import canonical_tail, flat_texts, utc_stamp
from bastion.audit.events import AuditEvent, EventType, Outcome
from bastion.audit.recorder import Batch, ScrubbedDetails
from bastion.audit.sinks import _rows

STAMP = "2026-11-29T05:08:57.856908Z"
#: Texts around the plain ones: quotes, backslashes, controls, DEL, non-ASCII, percent signs.
_AWKWARD = st.sampled_from(['"', "\\", "\x00", "\x1f", "\x7f", "é", "\u2028", "%", "%s", " ", "~"])
TEXTS = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
    st.lists(st.one_of(_AWKWARD, st.text(max_size=5)), max_size=6).map("".join),
)
VALUES = st.one_of(
    TEXTS,
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
DETAILS = st.dictionaries(TEXTS, VALUES, max_size=8)
COLUMNS = st.lists(st.one_of(st.none(), TEXTS), min_size=8, max_size=8)
STAMPS = st.one_of(st.just(STAMP), TEXTS)


def _reference(stamp: str, columns: list[str | None], details: ScrubbedDetails) -> tuple[str, str]:
    return json.dumps(details), canonical_tail(stamp, columns, details)


@settings(max_examples=600, deadline=None)
@given(stamp=STAMPS, columns=COLUMNS, details=DETAILS)
def test_flat_texts_are_the_encoders_texts_or_none(
    stamp: str, columns: list[str | None], details: dict[str, Any]
) -> None:
    scrubbed = ScrubbedDetails(details)
    ours = flat_texts(stamp, columns, scrubbed)
    if ours is not None:
        assert ours == _reference(stamp, columns, scrubbed)
        # Taken only where the encoders write every string as it is.
        assert all(chain._plain(text) for text in [stamp, *filter(None, columns), *details])


@settings(max_examples=300, deadline=None)
@given(
    columns=st.lists(
        st.one_of(st.none(), st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126))),
        min_size=8,
        max_size=8,
    ),
    details=st.dictionaries(
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=12),
        st.one_of(
            st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=12),
            st.integers(),
            st.floats(allow_nan=False, allow_infinity=False),
        ),
        max_size=8,
    ),
)
def test_plain_flat_details_take_the_fast_path(
    columns: list[str | None], details: dict[str, Any]
) -> None:
    scrubbed = ScrubbedDetails(details)
    ours = flat_texts(STAMP, columns, scrubbed)
    plain = all(
        chain._plain(t)
        for t in [*filter(None, columns), *details.values(), *details]
        if type(t) is str
    )
    assert (ours is not None) is plain
    if ours is not None:
        assert ours == _reference(STAMP, columns, scrubbed)


@pytest.mark.parametrize(
    "details",
    [
        {},
        {"latency_ms": 0.1, "n": -0.0, "big": 1e300, "small": 5e-324, "i": 10**20},
        {"%": "%s", "a%sb": "%(x)s", "k": "100%"},
        {"b": "x", "a": "y", "B": "z", "_": "w", "aa": "v"},  # the sort is the encoder's
        {"store_id": "01JDQ8ZK3V6Y2W9X4T5R7M8N0P", "latency_ms": 12.5, "source": "api"},
    ],
)
def test_cases(details: dict[str, Any]) -> None:
    columns = ["authz:check:denied", "failure", None, "a#b@c", None, "ua", "rid", "no_relationship"]
    scrubbed = ScrubbedDetails(details)
    assert flat_texts(STAMP, columns, scrubbed) == _reference(STAMP, columns, scrubbed)


@pytest.mark.parametrize(
    "details",
    [
        {"x": math.nan},
        {"x": math.inf},
        {"x": -math.inf},
        {"x": True},
        {"x": None},
        {"x": [1]},
        {"x": {"y": 1}},
        {"x": 'say "hi"'},
        {"x": "back\\slash"},
        {"x": "caf\u00e9"},
        {"x": "tab\there"},
        {"x": "del\x7f"},
        {'k"ey': "v"},
        {"k\u00e9y": "v"},
    ],
)
def test_declined(details: dict[str, Any]) -> None:
    columns = ["t", "o", None, None, None, None, None, None]
    assert flat_texts(STAMP, columns, ScrubbedDetails(details)) is None
    assert (
        flat_texts(STAMP, ["t", "o", 'a"b', None, None, None, None, None], ScrubbedDetails({}))
        is None
    )
    assert flat_texts('2026"', columns, ScrubbedDetails({})) is None


def test_subclassed_texts_are_declined() -> None:
    class Text(str):
        __slots__ = ()

    columns = ["t", "o", None, None, None, None, None, None]
    assert flat_texts(STAMP, columns, ScrubbedDetails({"x": Text("v")})) is None
    assert flat_texts(STAMP, columns, ScrubbedDetails({Text("x"): "v"})) is None
    assert flat_texts(STAMP, [*columns[:7], Text("r")], ScrubbedDetails({})) is None
    assert flat_texts(STAMP, columns[:7], ScrubbedDetails({})) is None  # not the chain's columns


def _dialect() -> Any:
    return create_async_engine("sqlite+inline://").dialect


def _events() -> list[AuditEvent]:
    time = datetime(2026, 11, 29, 5, 8, 57, 856908, tzinfo=UTC)
    decision = ScrubbedDetails(
        store_id="01JDQ8ZK3V6Y2W9X4T5R7M8N0P",
        model_id="01JDQ8ZK4A1B2C3D4E5F6G7H8J",
        object="document:d1",
        relation="viewer",
        user="user:u1",
        latency_ms=0.123,
        source="api",
    )
    return [
        AuditEvent(
            EventType.AUTHZ_CHECK_DENIED,
            Outcome.FAILURE,
            time,
            "user:a",
            "d#v@u",
            "127.0.0.1",
            "ua",
            "rid",
            "no_relationship",
            decision,
        ),
        AuditEvent(
            EventType.AUTHZ_CHECK_DENIED,
            Outcome.FAILURE,
            time,
            None,
            'd#v@"u"',
            None,
            None,
            None,
            "no_relationship",
            decision,
        ),
        AuditEvent(
            EventType.AUTHZ_CHECK_ALLOWED,
            Outcome.SUCCESS,
            time,
            "user:a",
            None,
            None,
            None,
            None,
            None,
            ScrubbedDetails(x="\u00e9", n=math.nan),
        ),
        AuditEvent(
            EventType.AUTHZ_CHECK_ALLOWED,
            Outcome.SUCCESS,
            time,
            "user:a",
            None,
            None,
            None,
            None,
            None,
            ScrubbedDetails(),
        ),
        AuditEvent(
            EventType.AUTHZ_CHECK_ALLOWED,
            Outcome.SUCCESS,
            time,
            "user:a",
            None,
            None,
            None,
            None,
            None,
            {"plain": "dict"},
        ),
    ]


@pytest.mark.parametrize("shared", [False, True])
def test_the_sinks_link_is_the_general_paths(shared: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    insert_ = _rows._insert_for(_dialect())
    assert insert_.json_column
    events = _events()
    ours_batch, theirs_batch = Batch(events), Batch(events)
    ours = [
        _rows._link(insert_, e, ours_batch if shared else None, n) for n, e in enumerate(events)
    ]
    with monkeypatch.context() as patched:
        patched.setattr(_rows, "flat_texts", lambda *_args: None)
        theirs = [
            _rows._link(insert_, e, theirs_batch if shared else None, n)
            for n, e in enumerate(events)
        ]
    assert ours == theirs
    if shared:
        assert ours_batch.stamps == theirs_batch.stamps
        assert ours_batch.details_json == theirs_batch.details_json
        assert ours_batch.details_json[:4] == [_rows._json_column(e.details) for e in events[:4]]
    # And the tails are what the chain verifies the stored rows with.
    for event, (_, tail) in zip(events, ours, strict=True):
        row = _rows._row(event)
        assert tail == chain.row_tail(row)
        assert tail == canonical_tail(
            utc_stamp(event.time), _rows._texts(event), _rows._details(event)
        )


_OLD_FORMAT = "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ"


@settings(max_examples=500, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(2, 1, 1),  # noqa: DTZ001 - hypothesis adds the zone
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), UTC]),
    )
)
def test_utc_stamp_is_what_it_was(value: datetime) -> None:
    utc = value.astimezone(UTC)
    if utc.year < 1000:
        expected = utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    else:
        fields = (*utc.timetuple()[:6], utc.microsecond)
        expected = _OLD_FORMAT % fields
    assert utc_stamp(value) == expected


def _old_stamp(value: datetime) -> str:
    utc = value.astimezone(UTC)
    return _OLD_FORMAT % (*utc.timetuple()[:6], utc.microsecond)


def test_utc_stamp_remembers_the_minute_only_for_that_minute() -> None:
    # The minute's text is remembered: each boundary (second, minute, hour, day, month, year),
    # going back in time, another offset mapping to the same or another UTC minute.
    base = datetime(2026, 12, 31, 23, 59, 58, 999999, tzinfo=UTC)
    steps = [timedelta(microseconds=1), timedelta(seconds=1), timedelta(minutes=1)]
    times = [base + n * step for step in steps for n in range(-3, 4)]
    times += [base.astimezone(timezone(timedelta(hours=5, minutes=30))), base, base]
    times += [base.astimezone(timezone(timedelta(hours=-7))) + timedelta(hours=1), base]
    for value in times:
        assert utc_stamp(value) == _old_stamp(value)


def test_utc_stamp_is_right_from_concurrent_threads() -> None:
    # Threads stamping different minutes at once: the remembered minute is replaced whole, so
    # no stamp takes one minute's text with another's seconds.
    base = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)
    values = [base + timedelta(minutes=n % 7, seconds=n % 59, microseconds=n) for n in range(2000)]
    wrong: list[datetime] = []

    def stamp_all(offset: int) -> None:
        wrong.extend(
            value
            for value in values[offset:] + values[:offset]
            if utc_stamp(value) != _old_stamp(value)
        )

    threads = [threading.Thread(target=stamp_all, args=(n * 300,)) for n in range(4)]
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(switch)
    assert wrong == []
