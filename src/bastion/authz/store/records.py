"""What the authorization store returns: immutable records and pages."""

from __future__ import annotations

import base64
import binascii
import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from bastion.authz.errors import InvalidContinuationToken
from bastion.authz.tuples import Tuple

__all__ = [
    "Change",
    "ModelRecord",
    "OnDuplicate",
    "OnMissing",
    "Operation",
    "Page",
    "StoreRecord",
    "StoredTuple",
    "decode_token",
    "encode_token",
]

T = TypeVar("T")

#: A continuation token is a few dozen bytes; anything longer is refused before decoding.
MAX_TOKEN_CHARS = 512


class OnDuplicate(enum.StrEnum):
    """What a write does with a tuple that already exists (OpenFGA's ``on_duplicate``)."""

    ERROR = "error"
    IGNORE = "ignore"  # accepted when the existing tuple has the same condition


class OnMissing(enum.StrEnum):
    """What a delete does with a tuple that does not exist (OpenFGA's ``on_missing``)."""

    ERROR = "error"
    IGNORE = "ignore"


class Operation(enum.StrEnum):
    WRITE = "TUPLE_OPERATION_WRITE"
    DELETE = "TUPLE_OPERATION_DELETE"


@dataclass(frozen=True, slots=True)
class StoreRecord:
    id: str
    name: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ModelRecord:
    """One immutable version of a store's authorization model (OpenFGA's JSON form)."""

    id: str
    store_id: str
    schema_version: str
    model: Mapping[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class StoredTuple:
    tuple: Tuple
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class Change:
    """One changelog entry; ``id`` grows in commit order within a store."""

    id: int
    operation: Operation
    tuple: Tuple
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of results; ``continuation_token`` is ``""`` when there is nothing more."""

    items: tuple[T, ...]
    continuation_token: str


def encode_token(kind: str, position: Mapping[str, Any]) -> str:
    """An opaque continuation token for ``kind`` (``read``, ``changes``...) at ``position``.

    Tokens are not signed: they only hold a position in the caller's own store (every query
    still filters by the store id), so a forged token can only skip within what the caller may
    read anyway.
    """
    raw = json.dumps({"k": kind, **position}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_token(token: str, kind: str) -> dict[str, Any]:
    """The position in ``token``. Raises InvalidContinuationToken for anything malformed."""
    if len(token) > MAX_TOKEN_CHARS:
        raise InvalidContinuationToken
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidContinuationToken from exc
    if not isinstance(value, dict) or value.pop("k", None) != kind:
        raise InvalidContinuationToken
    return value


def token_int(position: Mapping[str, Any], key: str) -> int:
    """An integer field of a decoded token. Raises InvalidContinuationToken."""
    value = position.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidContinuationToken
    return value
