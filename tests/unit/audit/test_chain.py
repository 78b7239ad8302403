"""The chain's canonical encoding and MAC: fast paths, same bytes as the reference definition."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from bastion.audit.chain import CONTENT_COLUMNS, FORMAT, ChainKeys, canonical, event_mac
from bastion.audit.events import AuditEvent, EventType, Outcome
from bastion.audit.recorder import scrub
from bastion.audit.sinks import event_row
from bastion.crypto import Keyring

KEYS = ChainKeys.from_keyring(Keyring(b"k" * 32))


def _reference_normal(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _reference_normal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_reference_normal(v) for v in value]
    return value


def reference(seq: int, key_id: str, row: Mapping[str, Any], prev_mac: str) -> bytes:
    """The module docstring's definition, written plainly (as the first links were made)."""
    time = row["time"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    fields = [FORMAT, seq, key_id, prev_mac, time]
    fields += [row[name] for name in CONTENT_COLUMNS[1:-1]]
    fields.append(_reference_normal(row["details"]))
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


DETAILS: list[dict[Any, Any]] = [
    {},
    {"fields": ["name"], "n": 1, "flag": True, "none": None},
    {"ratio": 2.0, "nested": {"x": 1.0, "y": [3.0, 0.5, 1e16]}, 7: "int key", "neg": -0.0},
    {"é": 'ünï\u2028"\\', "password": "hunter2", "z": [{"token": 1}]},
]
TIMES = [
    datetime(2026, 5, 4, 3, 2, 1, 7, tzinfo=UTC),
    datetime(2026, 1, 1, tzinfo=UTC),
    datetime(2026, 5, 4, 3, 2, 1, 999999, tzinfo=timezone(timedelta(hours=-7))),
    datetime(999, 1, 1, tzinfo=UTC),
]


@pytest.mark.parametrize("details", DETAILS)
@pytest.mark.parametrize("time", TIMES)
@pytest.mark.parametrize("scrubbed", [False, True])
def test_canonical_bytes_and_macs_match_the_reference(
    details: dict[Any, Any], time: datetime, *, scrubbed: bool
) -> None:
    event = AuditEvent(
        type=EventType.IDENTITY_LOGIN_FAILED,
        outcome=Outcome.FAILURE,
        time=time,
        actor="ü",
        subject="user:7",
        user_agent='a"b',
        reason="wrong_password",
        details=scrub(details) if scrubbed else details,
    )
    row = event_row(event)
    read_back = {**row, "details": json.loads(json.dumps(row["details"]))}  # as verify sees it
    for candidate in (row, read_back):
        expected = reference(9, "kid", candidate, "f" * 64)
        assert canonical(9, "kid", candidate, "f" * 64) == expected
        key = KEYS.current
        signed = reference(9, key.key_id, candidate, "f" * 64)
        mac = hmac.new(key.key, signed, hashlib.sha256).hexdigest()
        assert event_mac(key, 9, candidate, "f" * 64) == mac
