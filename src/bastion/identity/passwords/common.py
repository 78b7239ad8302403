"""Common-password screening (NIST SP 800-63B §5.1.1.2: "passwords obtained from previous breach
corpuses", "commonly-used, expected, or compromised values").

The list is the 30,000 most common passwords bundled with zxcvbn
(``zxcvbn.frequency_lists.FREQUENCY_LISTS["passwords"]``), matched case-insensitively, also after
stripping the digits, symbols and spaces people pad a common word with: ``Password123!`` and
``!!dragon`` are as common as ``password`` and ``dragon``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection

from bastion.identity.passwords.dictionaries import frequency_lists

__all__ = ["common_passwords", "is_common"]

# Runs of non-letters at either end: digits, punctuation, symbols, emoji, spaces, underscores.
_LEADING = re.compile(r"^[\W\d_]+")
_TRAILING = re.compile(r"[\W\d_]+$")


@functools.cache
def common_passwords() -> Collection[str]:
    """The common-password list, lower-cased (loaded once, on the first password decided:
    a worker only serving logins and tokens never needs it). zxcvbn's list is lower-case
    already, so it is zxcvbn's own compact ranked dictionary (shared with the strength score,
    see :mod:`bastion.identity.passwords.dictionaries`); any other word is folded into a set."""
    passwords = frequency_lists()["passwords"]
    if all(word.casefold() == word for word in passwords):
        return passwords
    return frozenset(word.casefold() for word in passwords)  # pragma: no cover - other lists


def is_common(normalized: str) -> bool:
    """True if the (NFKC-normalised) password, or its core without padding, is on the list."""
    folded = normalized.casefold()
    without_tail = _TRAILING.sub("", folded)
    candidates = {
        folded,
        folded.strip(),
        without_tail,
        _LEADING.sub("", folded),
        _LEADING.sub("", without_tail),
    }
    common = common_passwords()
    return any(candidate in common for candidate in candidates if candidate)
