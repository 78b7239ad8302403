"""The password policy (NIST SP 800-63B §5.1.1.2), as a decision with reasons.

Rules, cheapest first: length in code points after NFKC (default 12 to 128; any Unicode,
spaces included), not a common password (:mod:`~bastion.identity.passwords.common`), no part of
the user's email address or name (four characters or more), optionally a composition rule, then
a zxcvbn strength score (default at least 3 of 4). Expensive rules run only if the cheap ones
pass. Breach-corpus and history checks need I/O and hashing: the service adds them
(:meth:`~bastion.identity.passwords.services.PasswordService.check_new_password`).

``evaluate`` returns :class:`Accepted` or :class:`Rejected`; a rejection lists every
:class:`RejectionReason` found (for tests and the audit log) and a user-facing message.
"""

from __future__ import annotations

import enum
import re
import threading
import unicodedata
from dataclasses import dataclass
from typing import ClassVar

from bastion.identity.passwords.common import is_common
from bastion.identity.passwords.dictionaries import load_zxcvbn
from bastion.identity.passwords.errors import PasswordTooLong
from bastion.identity.passwords.normalization import normalize, password_bytes
from bastion.identity.passwords.settings import PasswordSettings

__all__ = [
    "MIN_USER_WORD_CHARS",
    "ZXCVBN_MAX_CHARS",
    "Accepted",
    "PasswordPolicy",
    "PolicyDecision",
    "Rejected",
    "RejectionReason",
    "UserInfo",
]

#: Shorter parts of a name or address ("al", "com") are too likely to occur by chance.
MIN_USER_WORD_CHARS = 4
#: zxcvbn's run time grows steeply with length (seconds for 128 random characters): score only
#: this prefix. A password is at least as hard to guess as its first 64 characters.
ZXCVBN_MAX_CHARS = 64
#: zxcvbn keeps each call's user inputs in a module-level dictionary (``matching.RANKED_DICTIONARIES
#: ["user_inputs"]``) that the matching then reads: two decisions running at once in the
#: hashing threads would score against each other's inputs. One call at a time (the scoring is
#: pure Python under the GIL, so nothing runs in parallel anyway).
_ZXCVBN_LOCK = threading.Lock()
_WORD_SEPARATORS = re.compile(r"[\s._+\-'@]+")


class RejectionReason(enum.StrEnum):
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    COMMON = "common"
    SIMILAR_TO_USER_INFO = "similar_to_user_info"
    MISSING_CHARACTER_CLASSES = "missing_character_classes"
    TOO_WEAK = "too_weak"
    BREACHED = "breached"
    BREACH_CHECK_UNAVAILABLE = "breach_check_unavailable"
    REUSED = "reused"


_MESSAGES = {
    RejectionReason.TOO_SHORT: "Use at least {min_length} characters.",
    RejectionReason.TOO_LONG: "Use at most {max_length} characters.",
    RejectionReason.COMMON: "This password is one of the most common; choose another.",
    RejectionReason.SIMILAR_TO_USER_INFO: "Don't use your name or email address.",
    RejectionReason.MISSING_CHARACTER_CLASSES: (
        "Use at least {classes} of: lowercase letters, uppercase letters, digits, symbols."
    ),
    RejectionReason.TOO_WEAK: (
        "This password is easy to guess; a few unrelated words make a strong one."
    ),
    RejectionReason.BREACHED: "This password appeared in a data breach; choose another.",
    RejectionReason.BREACH_CHECK_UNAVAILABLE: (
        "This password cannot be checked right now; try again in a moment."
    ),
    RejectionReason.REUSED: "Choose a password you have not used recently.",
}


@dataclass(frozen=True, slots=True)
class UserInfo:
    """What the password must not contain (also given to zxcvbn as known user inputs)."""

    email: str | None = None
    names: tuple[str, ...] = ()
    username: str | None = None

    def words(self) -> list[str]:
        """Lower-cased words of at least :data:`MIN_USER_WORD_CHARS` characters: the email's
        local part (whole and split at ``. _ + -``), its domain labels without the TLD, each
        name (whole, joined and split), and the username."""
        found: list[str] = []
        if self.email:
            local, _, domain = self.email.rpartition("@")
            found += [local, *_WORD_SEPARATORS.split(local), *domain.split(".")[:-1]]
        for name in self.names:
            parts = _WORD_SEPARATORS.split(name)
            found += [name, "".join(parts), *parts]
        if self.username:
            found += [self.username, *_WORD_SEPARATORS.split(self.username)]
        words = {unicodedata.normalize("NFKC", word).casefold() for word in found}
        return sorted(w for w in words if len(w) >= MIN_USER_WORD_CHARS)


@dataclass(frozen=True, slots=True)
class Accepted:
    #: zxcvbn score, 0 (weakest) to 4.
    score: int
    ok: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class Rejected:
    reasons: tuple[RejectionReason, ...]
    messages: tuple[str, ...]
    ok: ClassVar[bool] = False

    @property
    def message(self) -> str:
        """The user-facing explanation (one sentence per reason)."""
        return " ".join(self.messages)


PolicyDecision = Accepted | Rejected


class PasswordPolicy:
    """Evaluates candidate passwords against the configured local rules."""

    def __init__(self, settings: PasswordSettings) -> None:
        self.settings = settings

    def reject(self, *reasons: RejectionReason, hint: str = "") -> Rejected:
        """A :class:`Rejected` decision with the user-facing message of each reason."""
        s = self.settings
        messages = [
            _MESSAGES[r].format(
                min_length=s.min_length, max_length=s.max_length, classes=s.min_character_classes
            )
            for r in reasons
        ]
        return Rejected(tuple(reasons), (*messages, hint) if hint else tuple(messages))

    def evaluate(self, password: str, user: UserInfo | None = None) -> PolicyDecision:
        """Decide on a new password. CPU-bound (up to ~0.15 s for zxcvbn): run it in a worker."""
        try:
            password_bytes(password)  # the byte cap, before any further work on the text
        except PasswordTooLong:
            return self.reject(RejectionReason.TOO_LONG)
        text = normalize(password)
        if len(text) > self.settings.max_length:
            return self.reject(RejectionReason.TOO_LONG)
        words = user.words() if user else []
        reasons = self._cheap_rules(text, words)
        if reasons:
            return self.reject(*reasons)
        # Loaded on first use (a login-only worker never needs it), with compact dictionaries.
        zxcvbn = load_zxcvbn().zxcvbn
        with _ZXCVBN_LOCK:
            result = zxcvbn(text[:ZXCVBN_MAX_CHARS], user_inputs=words)
        score = int(result["score"])
        if score < self.settings.min_strength_score:
            warning = str(result["feedback"]["warning"] or "")
            return self.reject(RejectionReason.TOO_WEAK, hint=warning)
        return Accepted(score=score)

    def _cheap_rules(self, text: str, words: list[str]) -> list[RejectionReason]:
        reasons = []
        if len(text) < self.settings.min_length:
            reasons.append(RejectionReason.TOO_SHORT)
        if is_common(text):
            reasons.append(RejectionReason.COMMON)
        folded = text.casefold()
        if any(word in folded for word in words):
            reasons.append(RejectionReason.SIMILAR_TO_USER_INFO)
        required = self.settings.min_character_classes
        if required and _character_classes(text) < required:
            reasons.append(RejectionReason.MISSING_CHARACTER_CLASSES)
        return reasons


def _character_classes(text: str) -> int:
    lower = any(c.islower() for c in text)
    upper = any(c.isupper() for c in text)
    digit = any(c.isdigit() for c in text)
    other = any(not (c.islower() or c.isupper() or c.isdigit()) for c in text)
    return lower + upper + digit + other
