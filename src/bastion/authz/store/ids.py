"""ULIDs: the identifiers of stores and model versions, as OpenFGA issues them.

26 characters of Crockford base32: a 48-bit millisecond timestamp then 80 random bits from the
OS CSPRNG. Clients (``openfga-sdk``) check the format ``^[0-7][0-9A-HJKMNP-TV-Z]{25}$``. Ids
are not secrets: access to a store is decided by the API's authorization, never by knowing
its id.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime

__all__ = ["RESERVED_PREFIX", "ULID_PATTERN", "is_reserved", "is_ulid", "new_ulid"]

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ULID_PATTERN = r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$"
_ULID = re.compile(ULID_PATTERN)
#: Ids whose timestamp is zero are never issued by :func:`new_ulid`: they name stores Bastion
#: manages itself (its own roles), which the public API may read but never change.
RESERVED_PREFIX = "0" * 10


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def new_ulid(now: datetime) -> str:
    """A new ULID for the instant ``now`` (an aware datetime)."""
    millis = int(now.timestamp() * 1000)
    return _encode(millis, 10) + _encode(secrets.randbits(80), 16)


def is_ulid(value: str) -> bool:
    """True when ``value`` has the ULID format."""
    return _ULID.fullmatch(value) is not None


def is_reserved(store_id: str) -> bool:
    """True for the id of a store Bastion manages itself (a zero timestamp)."""
    return store_id.startswith(RESERVED_PREFIX)
