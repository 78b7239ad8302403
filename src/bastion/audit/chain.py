"""The tamper-evident chain: a keyed MAC over each stored event and its predecessor's MAC.

``mac[n] = HMAC-SHA256(K, canonical(n, key_id, event[n], mac[n-1]))`` with ``mac[0]`` =
:data:`GENESIS_MAC` (or, after a purge, the MAC of the anchor checkpoint's event). ``K`` is the
root secret key's :attr:`~bastion.crypto.KeyPurpose.AUDIT_CHAIN` subkey (HKDF), never the root
itself, so nothing else Bastion computes with the root key can forge or verify a link.

Why it detects tampering: changing, inserting, deleting or moving one row changes (or breaks) the
input of its own MAC and of every later one, and without ``K`` nobody can compute the new MACs.
Someone who holds ``K`` could recompute the whole chain; signed checkpoints
(:mod:`bastion.audit.checkpoints`) exported to an outside party defeat that too.

Canonical encoding (a wire format: changing it breaks every stored chain, so it is versioned by
:data:`FORMAT`): a JSON array, keys sorted, no whitespace, ASCII only, of the fields exactly as
the database returns them: the time in UTC ISO 8601 with microseconds, the text columns, and the
details with every integral float written as an integer (PostgreSQL's JSONB reads ``1e16`` back
as an integer; the MAC must not depend on the backend).
"""

from __future__ import annotations

import hmac
import json
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii
from typing import Any

from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.hmac import HMAC

from bastion.audit.scrub import ScrubbedDetails
from bastion.crypto import KeyPurpose, Keyring

__all__ = [
    "CONTENT_COLUMNS",
    "FORMAT",
    "GENESIS_MAC",
    "ChainKey",
    "ChainKeys",
    "canonical",
    "canonical_tail",
    "checkpoint_tag",
    "event_mac",
    "flat_texts",
    "link_mac",
    "link_macs",
    "row_tail",
    "utc_stamp",
]

FORMAT = "bastion-audit-chain/1"
GENESIS_MAC = "0" * 64
#: The columns a link covers, in encoding order (``seq`` and ``key_id`` come first).
CONTENT_COLUMNS = (
    "time",
    "type",
    "outcome",
    "actor",
    "subject",
    "client_ip",
    "user_agent",
    "request_id",
    "reason",
    "details",
)
#: The text columns, between the time and the details.
_TEXT_COLUMNS = CONTENT_COLUMNS[1:-1]
_CHECKPOINT_LABEL = "bastion-audit-checkpoint/1"
_FOUR_DIGIT_YEAR = 1000
#: One encoder for every link (``json.dumps`` with options builds a new one per call).
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _not_json(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _tree_encoder() -> Callable[[Any], str]:
    """:data:`_ENCODER`'s ``encode`` without building a C encoder per call (``encode`` does).

    Without the cycle check: links hold trees (scrubbed details, JSON read back from the
    database), and a cycle still fails (RecursionError) rather than encoding anything.
    """
    make: Any = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython always has the C encoder
        return _ENCODER.encode
    encode = make(None, _not_json, encode_basestring_ascii, None, ":", ",", True, False, True)
    return lambda value: "".join(encode(value, 0))


_ENCODE = _tree_encoder()
#: The start of every link's encoding, up to the comma before ``seq``.
_HEAD = _ENCODE([FORMAT])[:-1] + ","


@dataclass(frozen=True, slots=True)
class ChainKey:
    """A chain key and its public id (hex). The key never appears in ``repr``."""

    key_id: str
    key: bytes = field(repr=False)
    #: HMAC-SHA256 keyed once (the maintained library's, over OpenSSL): each link copies it,
    #: so the key schedule is not redone per link (cheaper than ``hmac.digest``, which keys
    #: OpenSSL's HMAC anew per call: see docs/benchmarks.md, decision, eighth session).
    _keyed: HMAC = field(init=False, repr=False, compare=False)
    #: The start of each link's encoding up to the previous MAC: ``_HEAD``, then (after the
    #: sequence number) the key id as the encoder writes it (``,"<key id>",``).
    _id_json: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_keyed", HMAC(self.key, SHA256()))
        key_id = self.key_id
        if type(key_id) is str:
            object.__setattr__(self, "_id_json", "," + encode_basestring_ascii(key_id) + ",")
        else:
            object.__setattr__(self, "_id_json", "")

    def mac(self, message: bytes) -> str:
        """The hex HMAC-SHA256 of ``message`` under this key."""
        keyed = self._keyed.copy()
        keyed.update(message)
        return keyed.finalize().hex()


class ChainKeys:
    """The current chain key (new links) and every configured one by id (verification)."""

    def __init__(self, keys: Sequence[ChainKey]) -> None:
        if not keys:
            raise ValueError("at least one chain key is needed")
        self.current = keys[0]
        self._by_id = {key.key_id: key for key in keys}

    @classmethod
    def from_keyring(cls, keyring: Keyring) -> ChainKeys:
        return cls(
            [
                ChainKey(version.key_id.hex(), version.key)
                for version in keyring.versions(KeyPurpose.AUDIT_CHAIN)
            ]
        )

    def get(self, key_id: str | None) -> ChainKey | None:
        return self._by_id.get(key_id) if key_id else None

    def all(self) -> list[ChainKey]:
        return list(self._by_id.values())


#: Values the encoder writes the same whatever the backend returns: nothing to normalize.
_PLAIN = frozenset({str, int, bool, type(None)})


def _normal(value: Any) -> Any:  # noqa: PLR0911 - one case per kind
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is dict or kind is ScrubbedDetails:
        # A flat mapping of plain values with text keys (most details): encode it as it is.
        if all(type(k) is str and type(v) in _PLAIN for k, v in value.items()):
            return value
        return {str(k): _normal(v) for k, v in value.items()}
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _normal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normal(v) for v in value]
    return value


#: The last minute stamped and its text (``YYYY-MM-DDTHH:MM:``), as one tuple replaced whole
#: (a thread reading it never sees one minute's key with another's text). Events come in time
#: order: most share their minute with the one before.
_MINUTE: list[tuple[tuple[int, ...], str]] = [((), "")]


def _time(value: datetime) -> str:
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    year = value.year
    if year < _FOUR_DIGIT_YEAR:
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # as stored links were made
    # That strftime's result without its cost: the minute's text remembered, only the seconds
    # formatted per event.
    minute = (year, value.month, value.day, value.hour, value.minute)
    last = _MINUTE[0]
    if last[0] != minute:
        last = _MINUTE[0] = (minute, "%04d-%02d-%02dT%02d:%02d:" % minute)  # noqa: UP031
    return last[1] + "%02d.%06dZ" % (value.second, value.microsecond)  # noqa: UP031


def utc_stamp(time: datetime) -> str:
    """The event time as the canonical encoding writes it (UTC ISO 8601 with microseconds)."""
    return _time(time)


def canonical_tail(
    time: datetime | str, columns: Sequence[str | None], details: Mapping[str, Any]
) -> str:
    """The end of an event's canonical encoding: everything after its position in the chain
    (``seq``, key id, previous MAC), from the ``,`` before the time to the closing ``]``.

    It depends only on the event, so a writer can compute it before it locks the chain head;
    :func:`link_mac` then adds the position. ``time`` is the datetime or its :func:`utc_stamp`;
    ``columns`` are the text columns between the time and the details in
    :data:`CONTENT_COLUMNS`' order.
    """
    fields: list[Any] = [time if isinstance(time, str) else _time(time), *columns]
    # The recorder's snapshot already writes integral floats as integers (see scrub()).
    fields.append(details if type(details) is ScrubbedDetails else _normal(details))
    return "," + _ENCODE(fields)[1:]


_SLOT: Any = object()


def _pieces(parts: Sequence[Any]) -> list[str]:
    """``parts`` (texts and :data:`_SLOT` markers) as literal texts at the even indexes and
    slots at the odd ones: filled by ``pieces[1::2] = values``, then joined."""
    pieces: list[str] = [""]
    for part in parts:
        if part is _SLOT:
            pieces += ["", ""]
        else:
            pieces[-1] += part
    return pieces


class _Shape:
    """What :func:`flat_texts` needs for one shape of event: the pieces of the details' JSON
    column text and of the canonical tail, and which values go where."""

    __slots__ = ("column", "convert", "pick_columns", "pick_sorted", "tail")

    def __init__(self, keys: Sequence[str], kinds: Sequence[type], present: Sequence[int]) -> None:
        def value(kind: type) -> list[Any]:
            return ['"', _SLOT, '"'] if kind is str else [_SLOT]

        names = [encode_basestring_ascii(k) for k in keys]
        column: list[Any] = ["{"]
        for n, (name, kind) in enumerate(zip(names, kinds, strict=True)):
            column += [", " if n else "", name, ": ", *value(kind)]
        #: ``json.dumps(details)`` (default separators, insertion order).
        self.column = _pieces([*column, "}"])
        order = sorted(range(len(keys)), key=keys.__getitem__)
        tail: list[Any] = [",", *value(str)]
        for n in range(len(_TEXT_COLUMNS)):
            tail += [",", *(value(str) if n in present else ["null"])]
        tail.append(",{")
        for n, position in enumerate(order):
            tail += ["," if n else "", names[position], ":", *value(kinds[position])]
        #: :func:`canonical_tail`: the stamp, the text columns (``null`` where absent), the
        #: details with sorted keys.
        self.tail = _pieces([*tail, "}]"])
        #: The values written by ``repr`` (integers, floats), by index.
        self.convert = tuple((n, kind) for n, kind in enumerate(kinds) if kind is not str)
        self.pick_columns = _picker(present)
        self.pick_sorted = _picker(order)


def _picker(indexes: Sequence[int]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """``lambda values: tuple(values[n] for n in indexes)``, in C where it can be."""
    if len(indexes) > 1:
        return operator.itemgetter(*indexes)
    if indexes:
        only = indexes[0]
        return lambda values: (values[only],)
    return lambda _values: ()


#: Shapes seen (keyed by the details' keys, key types, value types and the text columns'
#: types), None for one :func:`flat_texts` declines; bounded (then new shapes are built anew).
_SHAPES: dict[tuple[Any, ...], _Shape | None] = {}
_SHAPES_MAX = 512
_PLAIN_VALUES = (str, int, float)


def _shape(
    keys: tuple[Any, ...], kinds: tuple[type, ...], columns: tuple[type, ...]
) -> _Shape | None:
    if len(columns) != len(_TEXT_COLUMNS) or not all(kind in _PLAIN_VALUES for kind in kinds):
        return None
    if not all(type(k) is str and _plain(k) for k in keys):
        return None  # a key's text goes into the pieces as it is
    if not all(kind is str or kind is type(None) for kind in columns):
        return None
    present = [n for n, kind in enumerate(columns) if kind is str]
    return _Shape(keys, kinds, present)


def _plain(text: str) -> bool:
    """Whether the JSON encoder writes ``text`` as it is between quotes: ASCII without what it
    escapes (``"``, a backslash, a control character, DEL)."""
    return text.isascii() and len(text.encode().translate(None, _ESCAPED)) == len(text)


#: The ASCII bytes the encoder escapes.
_ESCAPED = bytes(range(0x20)) + b'"\\\x7f'


_UNSEEN: Any = object()


def flat_texts(
    stamp: str, columns: Sequence[str | None], details: ScrubbedDetails
) -> tuple[str, str] | None:
    """``(json.dumps(details), canonical_tail(stamp, columns, details))``, for flat details
    (text keys; text, integer and finite float values) whose texts, and the stamp and columns,
    the encoder writes as they are (see :func:`_plain`); None for any other event.

    The same texts without encoding the same strings twice (the database sink needs both):
    fixed pieces per shape of event joined with the values (integers and floats by their
    ``repr``, as the encoder writes them), after one check that all the texts put in are
    plain."""
    values: Sequence[Any] = tuple(details.values())
    shape_key = (
        tuple(details),
        tuple(map(type, details)),
        tuple(map(type, values)),
        tuple(map(type, columns)),
    )
    shape = _SHAPES.get(shape_key, _UNSEEN)
    if shape is _UNSEEN:
        shape = _shape(shape_key[0], shape_key[2], shape_key[3])
        if len(_SHAPES) < _SHAPES_MAX:
            _SHAPES[shape_key] = shape
    if shape is None:
        return None
    if shape.convert:
        values = list(values)
        for n, kind in shape.convert:
            number = values[n]
            if kind is float and not math.isfinite(number):
                return None  # NaN, Infinity: the encoder's own words
            # The exact type was checked: repr is float's or int's, as the encoder writes them.
            values[n] = repr(number)
    filled = (stamp, *shape.pick_columns(columns), *shape.pick_sorted(values))
    if not _plain("".join(filled)):
        return None
    tail = shape.tail.copy()
    tail[1::2] = filled
    column = shape.column.copy()
    column[1::2] = values
    return "".join(column), "".join(tail)


def row_tail(row: Mapping[str, Any]) -> str:
    """:func:`canonical_tail` of ``row`` (a mapping with :data:`CONTENT_COLUMNS`)."""
    return canonical_tail(row["time"], [row[name] for name in _TEXT_COLUMNS], row["details"])


def _linked(seq: int, key_id: str, prev_mac: str, tail: str) -> bytes:
    # The encoder's own output for [FORMAT, seq, key_id, prev_mac, *tail's fields] (an int is
    # written by int.__repr__, a string by encode_basestring_ascii), without the list.
    if type(seq) is not int or type(key_id) is not str or type(prev_mac) is not str:
        # Anything else as the encoder writes it (a tampered row's NULL MAC is "null").
        return (_HEAD + _ENCODE([seq, key_id, prev_mac])[1:-1] + tail).encode()
    head = _HEAD + repr(seq) + "," + encode_basestring_ascii(key_id) + ","
    return (head + encode_basestring_ascii(prev_mac) + tail).encode()


def link_mac(key: ChainKey, seq: int, prev_mac: str, tail: str) -> str:
    """The hex MAC of the event whose :func:`canonical_tail` is ``tail``, at ``seq`` after
    ``prev_mac`` (the same as :func:`event_mac` of its row)."""
    return key.mac(_linked(seq, key.key_id, prev_mac, tail))


def link_macs(key: ChainKey, seq: int, prev_mac: str, tails: Sequence[str]) -> list[str]:
    """:func:`link_mac` of each tail in turn, at ``seq + 1``, ``seq + 2``, ... from ``prev_mac``
    (each link after the previous one's MAC): the MACs of a run of appended events.

    After the first link, the previous MAC is one this function wrote (``hexdigest``: hex
    digits only), which the encoder writes between plain quotes: the encoding is built without
    escaping it again (nor the key id, encoded once per key).
    """
    macs: list[str] = []
    if not tails:
        return macs
    seq += 1
    mac = link_mac(key, seq, prev_mac, tails[0])
    macs.append(mac)
    id_json = key._id_json  # noqa: SLF001 - this module's own precomputation
    if type(seq) is not int or not id_json:  # pragma: no cover - never from the sinks
        for tail in tails[1:]:
            seq += 1
            mac = link_mac(key, seq, mac, tail)
            macs.append(mac)
        return macs
    keyed = key._keyed  # noqa: SLF001 - ChainKey.mac inlined
    for tail in tails[1:]:
        seq += 1
        # _linked's bytes: _HEAD, seq, the key id, then the hex MAC between quotes (what
        # encode_basestring_ascii writes for hex digits), then the tail.
        link = keyed.copy()
        link.update((_HEAD + repr(seq) + id_json + '"' + mac + '"' + tail).encode())
        mac = link.finalize().hex()
        macs.append(mac)
    return macs


def canonical(seq: int, key_id: str, row: Mapping[str, Any], prev_mac: str) -> bytes:
    """The bytes MACed for the event ``row`` (a mapping with :data:`CONTENT_COLUMNS`)."""
    return _linked(seq, key_id, prev_mac, row_tail(row))


def event_mac(key: ChainKey, seq: int, row: Mapping[str, Any], prev_mac: str) -> str:
    """The hex MAC of event ``row`` at position ``seq`` after ``prev_mac``."""
    return key.mac(canonical(seq, key.key_id, row, prev_mac))


def checkpoint_tag(key: ChainKey, seq: int, mac: str, token: str) -> str:
    """The MAC that makes a stored checkpoint trustworthy without its signing key: a row copied
    or forged by someone without the chain key does not carry a valid tag."""
    message = json.dumps([_CHECKPOINT_LABEL, key.key_id, seq, mac, token], separators=(",", ":"))
    return hmac.digest(key.key, message.encode(), "sha256").hex()


def macs_equal(a: str | None, b: str | None) -> bool:
    """Constant-time comparison of two hex MACs (None never matches)."""
    if a is None or b is None:
        return False
    return hmac.compare_digest(a.encode(), b.encode())
