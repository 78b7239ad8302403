"""The chain's canonical encoding and MAC: fast paths, same bytes as the reference definition."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from bastion.audit.chain import (
    CONTENT_COLUMNS,
    FORMAT,
    GENESIS_MAC,
    ChainKey,
    ChainKeys,
    canonical,
    canonical_tail,
    event_mac,
    link_mac,
    link_macs,
    row_tail,
)
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


#: Links made by the code before the writer computed tails ahead of the head lock (2026-11-28):
#: every later writer must produce, and verify, exactly these MACs.
GOLDEN_KEYS = ChainKeys.from_keyring(Keyring(b"k" * 32))
GOLDEN_EVENTS = [
    AuditEvent(
        type=EventType.IDENTITY_LOGIN_FAILED,
        outcome=Outcome.FAILURE,
        time=datetime(2026, 11, 28, 18, 0, 0, 123456, tzinfo=UTC),
        actor="user:1",
        subject="user:2",
        client_ip="203.0.113.9",
        user_agent="Mozilla/5.0 \u00fc",
        request_id="0123456789abcdef",
        reason="wrong_password",
        details={"attempt": 3, "ratio": 2.0, "fields": ["a", "b"], "password": "x"},
    ),
    AuditEvent(
        type=EventType.IDENTITY_PROFILE_UPDATED,
        outcome=Outcome.SUCCESS,
        time=datetime(2026, 11, 28, 18, 0, 1, tzinfo=UTC),
    ),
]
GOLDEN_MACS = [
    "332478616bc892818aeceba121c9186f467a2b9e635afa9ef317392b90cc1762",
    "7021c31fee1f96d54565f90f33b12d1b1ed443eda4f89df0eb7372fc72add01c",
]


def test_links_of_existing_trails_are_unchanged() -> None:
    key = GOLDEN_KEYS.current
    assert key.key_id == "6210434e"
    prev = GENESIS_MAC
    for seq, (event, golden) in enumerate(zip(GOLDEN_EVENTS, GOLDEN_MACS, strict=True), 1):
        row = event_row(event)
        assert event_mac(key, seq, row, prev) == golden
        assert link_mac(key, seq, prev, row_tail(row)) == golden
        prev = golden


@pytest.mark.parametrize("details", DETAILS)
@pytest.mark.parametrize("time", TIMES)
def test_tail_made_ahead_gives_the_reference_bytes(details: dict[Any, Any], time: datetime) -> None:
    row = event_row(
        AuditEvent(EventType.HTTP_REQUEST_FAILED, Outcome.FAILURE, time, details=details)
    )
    texts = [row[name] for name in CONTENT_COLUMNS[1:-1]]
    tail = canonical_tail(row["time"], texts, row["details"])
    for seq, key_id, prev in ((1, "kid", GENESIS_MAC), (10**12, "0a", "e" * 64)):
        expected = reference(seq, key_id, row, prev)
        assert canonical(seq, key_id, row, prev) == expected
        key = ChainKey(key_id, b"x" * 32)
        assert link_mac(key, seq, prev, tail) == hmac.new(key.key, expected, "sha256").hexdigest()


def test_a_tampered_null_mac_is_encoded_as_the_encoder_does() -> None:
    # verify recomputes links from stored rows: a NULL MAC must give a (wrong) MAC, not a crash.
    row = event_row(GOLDEN_EVENTS[1])
    expected = reference(3, "kid", {**row}, None)  # type: ignore[arg-type]
    assert canonical(3, "kid", row, None) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("length", [0, 1, 32, 63, 64, 65, 200])
def test_chain_key_mac_is_hmac_sha256(length: int) -> None:
    # The MAC is cryptography's HMAC keyed once and copied per link, not the hmac module: it
    # must be the very HMAC-SHA256 for every key length (shorter, equal to and longer than the
    # block), and a copy must not consume the keyed state.
    key = bytes(range(256))[:length]
    chain_key = ChainKey("0a", key)
    for message in (b"", b"m", bytes(range(256)) * 3):
        assert chain_key.mac(message) == hmac.new(key, message, hashlib.sha256).hexdigest()
        assert chain_key.mac(message) == chain_key.mac(message)  # the pads are not consumed


@pytest.mark.parametrize("key_id", ["6210434e", "kid", 'a"b\\c\u00e9'])
@pytest.mark.parametrize("prev", [GENESIS_MAC, "e" * 64, 'not"hex\\'])
def test_link_macs_are_link_mac_in_turn(key_id: str, prev: str) -> None:
    # The sink MACs a run of links at once: each must be link_mac after the previous one's MAC
    # (the first after the head's MAC, whatever it holds: a tampered head is encoded as is).
    key = ChainKey(key_id, b"x" * 32)
    tails = [row_tail(event_row(event)) for event in GOLDEN_EVENTS * 2]
    expected, mac = [], prev
    for seq, tail in enumerate(tails, 41):
        mac = link_mac(key, seq, mac, tail)
        expected.append(mac)
    assert link_macs(key, 40, prev, tails) == expected
    assert link_macs(key, 40, prev, tails[:1]) == expected[:1]
    assert link_macs(key, 40, prev, []) == []


def test_link_macs_are_the_stdlib_hmac_of_each_link() -> None:
    # The run of MACs (cryptography's HMAC copied per link, inline) against the hmac module
    # over each link's canonical bytes, built the way verify builds them.
    key = ChainKey("6210434e", bytes(range(32)))
    rows = [event_row(event) for event in GOLDEN_EVENTS * 3]
    macs = link_macs(key, 6, GENESIS_MAC, [row_tail(row) for row in rows])
    prev = GENESIS_MAC
    for seq, (row, mac) in enumerate(zip(rows, macs, strict=True), 7):
        assert mac == hmac.new(key.key, canonical(seq, key.key_id, row, prev), "sha256").hexdigest()
        prev = mac
