"""The one way a password becomes bytes: NFKC, UTF-8, and a byte cap checked first.

NIST SP 800-63B §5.1.1.2: apply Unicode normalisation (NFKC) before hashing, so the same
password typed on two keyboards (composed vs decomposed accents, full-width digits) verifies.
The byte cap is a denial-of-service defence: hashing cost grows with input length, and nobody
needs a 1 MiB password.
"""

from __future__ import annotations

import unicodedata

from bastion.identity.passwords.errors import PasswordTooLong

__all__ = ["MAX_PASSWORD_BYTES", "normalize", "password_bytes", "raw_password_bytes"]

#: The most a password may weigh after NFKC and UTF-8 encoding.
MAX_PASSWORD_BYTES = 1024
#: NFKC can shrink text about threefold at most (a Hangul jamo triple composes into one
#: syllable), so a string this long can never fit the cap: refuse it before normalising.
_MAX_RAW_CHARS = 4 * MAX_PASSWORD_BYTES


def normalize(password: str) -> str:
    """NFKC form of ``password``. Raises :class:`PasswordTooLong` for absurd inputs."""
    if len(password) > _MAX_RAW_CHARS:
        raise PasswordTooLong
    return unicodedata.normalize("NFKC", password)


def password_bytes(password: str) -> bytes:
    """NFKC + UTF-8 bytes of ``password``; raises :class:`PasswordTooLong` over the byte cap."""
    data = _utf8(normalize(password))
    if len(data) > MAX_PASSWORD_BYTES:
        raise PasswordTooLong
    return data


def raw_password_bytes(password: str) -> bytes:
    """UTF-8 bytes *without* normalisation, for legacy hashes computed that way; same cap."""
    if len(password) > MAX_PASSWORD_BYTES:
        raise PasswordTooLong
    data = _utf8(password)
    if len(data) > MAX_PASSWORD_BYTES:
        raise PasswordTooLong
    return data


def _utf8(text: str) -> bytes:
    # "surrogatepass": a lone surrogate (possible in a str decoded from a JSON "\ud800" escape)
    # must not crash hashing. Its bytes are never valid UTF-8, so no other password collides.
    return text.encode("utf-8", errors="surrogatepass")
