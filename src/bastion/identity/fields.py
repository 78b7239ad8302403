"""Field types shared by the identity routes: every text field is bounded and cleaned.

Bounds are checked by the request models (422 ``validation_failed``) before any work: no
unbounded string reaches a hash, a query or a mail. Text that will be stored refuses control
characters and lone surrogates (PostgreSQL refuses NUL; a surrogate cannot be encoded), so hostile
input (naughty strings) is a clean 422, never a 5xx.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator, Field

from bastion.identity.emails import MAX_EMAIL_CHARS, check_email

__all__ = ["DisplayName", "Email", "OpaqueToken", "Password", "SearchText", "is_plain_id"]

#: Longer input is refused before normalisation (the password byte cap is 1024 after NFKC).
MAX_PASSWORD_CHARS = 4096
#: Every opaque token Bastion issues is under 64 characters.
MAX_TOKEN_CHARS = 128
MAX_DISPLAY_NAME_CHARS = 200
MAX_SEARCH_CHARS = 100
#: Every id Bastion hands out (UUIDs, kids) has this shape.
_PLAIN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def is_plain_id(value: str) -> bool:
    """True if ``value`` could be an id Bastion issued. Anything else is unknown (404) without a
    query: a NUL or a lone surrogate in a path must never reach the database driver."""
    return _PLAIN_ID.fullmatch(value) is not None


def _display_name(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("the display name is empty")
    if any(unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn") for ch in value):
        raise ValueError("the display name has control or unassigned characters")
    return unicodedata.normalize("NFC", value)


def _search(value: str) -> str:
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
        raise ValueError("the search text has control characters")
    return value


def _email(value: str) -> str:
    return check_email(value)


Email = Annotated[str, Field(min_length=3, max_length=MAX_EMAIL_CHARS), AfterValidator(_email)]
DisplayName = Annotated[
    str, Field(min_length=1, max_length=MAX_DISPLAY_NAME_CHARS), AfterValidator(_display_name)
]
Password = Annotated[str, Field(min_length=1, max_length=MAX_PASSWORD_CHARS)]
OpaqueToken = Annotated[str, Field(min_length=1, max_length=MAX_TOKEN_CHARS)]
SearchText = Annotated[str, Field(max_length=MAX_SEARCH_CHARS), AfterValidator(_search)]
