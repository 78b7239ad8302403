"""Email addresses: a light shape check, and the normal form that identifies an account.

The normal form is NFKC then Unicode case folding, applied to the whole address: ``Ann@X.org``,
``ann@x.org`` and the same in full-width letters are one account. (RFC 5321 lets a server treat
local parts case-sensitively; no real mailbox provider does, and treating them as distinct
would let an attacker register a look-alike of an existing account.) The address *as given* is kept
for sending mail.

Validation is deliberately light: the only real check of an address is the mail that confirms
it. It refuses what can never be an address or would be dangerous to pass on (control
characters, header injection with CR/LF, no ``@``, over-long parts).
"""

from __future__ import annotations

import unicodedata

__all__ = ["MAX_EMAIL_CHARS", "InvalidEmail", "check_email", "normalize_email"]

#: RFC 5321 §4.5.3.1.3: a forward path is at most 256 octets, including angle brackets.
MAX_EMAIL_CHARS = 254
MAX_LOCAL_PART_CHARS = 64
MAX_DOMAIN_CHARS = 253


class InvalidEmail(ValueError):
    """Not an email address (the message says why, without repeating the input)."""


def normalize_email(email: str) -> str:
    """The account key of ``email``: NFKC, case-folded, surrounding space removed."""
    return unicodedata.normalize("NFKC", email).strip().casefold()


def check_email(email: str) -> str:
    """Return ``email`` without surrounding space if it has the shape of an address.

    Raises :class:`InvalidEmail` otherwise.
    """
    value = email.strip()
    if not value or len(value) > MAX_EMAIL_CHARS:
        raise InvalidEmail(f"an email address has 3 to {MAX_EMAIL_CHARS} characters")
    if value.isascii():
        # The ASCII characters of categories C and Z are the controls (Cc), which are not
        # printable, and the space (Zs), which is: the same test without a call per character.
        refused = " " in value or not value.isprintable()
    else:
        refused = any(unicodedata.category(ch)[0] in "CZ" for ch in value)
    if refused:
        # Control, format, separator characters: CR/LF would inject mail headers.
        raise InvalidEmail("an email address has no spaces or control characters")
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain:
        raise InvalidEmail("an email address has the form name@domain")
    if len(local) > MAX_LOCAL_PART_CHARS or len(domain) > MAX_DOMAIN_CHARS:
        raise InvalidEmail("the name or domain part of the email address is too long")
    if "@" in local and not (local.startswith('"') and local.endswith('"')):
        raise InvalidEmail("an email address has one @")
    if domain.startswith(".") or domain.endswith(".") or ".." in domain:
        raise InvalidEmail("the domain of the email address is malformed")
    return value
