"""The recorder's snapshot of an event: taken once, read-only, redacted, and trusted downstream."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from bastion.audit.chain import ChainKeys, canonical, event_mac
from bastion.audit.context import event_from_scope
from bastion.audit.events import AuditEvent, EventType, Outcome
from bastion.audit.recorder import QueueAuditRecorder, ScrubbedDetails, scrub, with_details
from bastion.audit.sinks import InMemorySink, event_row
from bastion.crypto import Keyring

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def make_event(details: Any) -> AuditEvent:
    return AuditEvent(
        type=EventType.IDENTITY_PROFILE_UPDATED,
        outcome=Outcome.SUCCESS,
        time=T0,
        actor="user:1",
        request_id="req-1",
        details=details,
    )


def test_scrubbed_details_refuse_every_change() -> None:
    details: ScrubbedDetails = scrub({"fields": ["name"], "n": 1})
    assert isinstance(details, ScrubbedDetails)
    changes: list[Callable[[], object]] = [
        lambda: details.__setitem__("password", "hunter2"),
        lambda: details.__delitem__("n"),
        lambda: details.update(password="hunter2"),
        lambda: details.setdefault("password", "hunter2"),
        lambda: details.pop("n"),
        details.popitem,
        details.clear,
    ]
    for change in changes:
        with pytest.raises(TypeError, match="read-only"):
            change()
    with pytest.raises(TypeError, match="read-only"):
        details |= {"password": "hunter2"}
    assert details == {"fields": ["name"], "n": 1}


def test_scrubbed_details_copy_and_pickle_without_assignment() -> None:
    details = scrub({"a": [1, {"b": 2}]})
    assert copy.copy(details) == details
    assert copy.deepcopy(details) == details
    assert pickle.loads(pickle.dumps(details)) == details  # noqa: S301 - our own bytes


async def test_an_event_without_details_is_not_shared_with_its_caller() -> None:
    # Attack on the snapshot: the caller keeps the (empty) dict it passed and fills it in after
    # record(), before the writer runs; the queued event must not see it.
    sink = InMemorySink()
    recorder = QueueAuditRecorder([sink], queue_size=10, batch_size=10)
    mine: dict[str, Any] = {}
    recorder.record(make_event(mine))
    mine["password"] = "hunter2"
    await recorder.aclose()
    assert sink.events[0].details == {}
    assert type(sink.events[0].details) is ScrubbedDetails


async def test_an_already_scrubbed_event_is_queued_as_it_is() -> None:
    sink = InMemorySink()
    recorder = QueueAuditRecorder([sink], queue_size=10, batch_size=10)
    event = event_from_scope(
        {"type": "http"},
        EventType.IDENTITY_PROFILE_UPDATED,
        Outcome.SUCCESS,
        details={"token": "abc", "fields": ["name"]},
    )
    assert event.details == {"token": "[redacted]", "fields": ["name"]}
    recorder.record(event)
    await recorder.aclose()
    assert sink.events == [event]


def test_with_details_keeps_every_other_field() -> None:
    event = make_event({"a": 1})
    other = with_details(event, {"b": 2})
    for field in dataclasses.fields(AuditEvent):
        if field.name != "details":
            assert getattr(other, field.name) == getattr(event, field.name)
    assert other.details == {"b": 2}


@pytest.mark.parametrize(
    "details",
    [
        {},
        {"fields": ["name"], "n": 1, "flag": True, "none": None},
        {"ratio": 2.0, "nested": {"x": 1.0, "y": [3.0, 0.5]}, 7: "int key"},
        {"when": T0, "password": "hunter2"},
    ],
)
def test_the_chain_mac_does_not_depend_on_who_scrubbed(details: dict[Any, Any]) -> None:
    # The sink trusts the recorder's snapshot and skips its own scrub; the stored row, its
    # canonical bytes and MAC must be exactly those of an event the sink scrubs itself.
    keys = ChainKeys.from_keyring(Keyring(b"k" * 32))
    raw, scrubbed = make_event(details), make_event(scrub(details))
    row_raw, row_scrubbed = event_row(raw), event_row(scrubbed)
    assert row_raw == row_scrubbed
    assert canonical(5, "kid", row_raw, "0" * 64) == canonical(5, "kid", row_scrubbed, "0" * 64)
    mac = event_mac(keys.current, 5, row_scrubbed, "0" * 64)
    assert mac == event_mac(keys.current, 5, row_raw, "0" * 64)


def test_the_event_constructor_behaves_as_the_generated_one() -> None:
    # AuditEvent's __init__ is written out (the slots' setters, for speed): it must accept and
    # store exactly what the dataclass's generated __init__ did, and stay frozen.
    reference = dataclasses.make_dataclass(
        "Reference",
        [(f.name, f.type, f) for f in dataclasses.fields(AuditEvent)],
        frozen=True,
        slots=True,
    )
    values = [EventType.IDENTITY_PROFILE_UPDATED, Outcome.SUCCESS, T0, "a", "s", "ip", "ua"]
    values += ["req", "why", {"k": 1}]
    names = [f.name for f in dataclasses.fields(AuditEvent)]
    for n in range(3, len(values) + 1):
        built = [
            AuditEvent(*values[:n]),
            AuditEvent(**dict(zip(names[:n], values[:n], strict=True))),
        ]
        expected = reference(*values[:n])
        for event in built:
            assert [getattr(event, name) for name in names] == [
                getattr(expected, name) for name in names
            ]
    explicit_none = AuditEvent(*values[:3], details=None)  # type: ignore[arg-type]
    assert explicit_none.details is None  # as given, like the generated __init__
    first, second = AuditEvent(*values[:3]), AuditEvent(*values[:3])
    assert first.details == {}
    assert first.details is not second.details  # a fresh default
    assert first == second
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.actor = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        AuditEvent(*values[:2])  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        AuditEvent(*values[:3], colour="red")  # type: ignore[call-arg]
