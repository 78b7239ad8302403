"""Typed settings of the password domain, to be nested in :class:`bastion.config.Settings`.

Every default is the secure choice: Argon2id at OWASP's minimum (19 MiB, 2 passes, 1 lane),
NIST SP 800-63B length rules, common-password and strength checks on. Parameters below OWASP's
minimum are refused unless ``allow_insecure_hash_parameters`` names the choice (tests do,
to stay fast); ``bastion check`` reports it.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "DEFAULT_HAND_OVER_BATCH",
    "DEFAULT_MAX_WAITING",
    "OWASP_ARGON2ID_MINIMUMS",
    "PasswordSettings",
    "meets_owasp_minimum",
]

#: OWASP Password Storage Cheat Sheet, Argon2id: equally strong (memory KiB, passes) pairs,
#: all with one lane. A configuration at or above any pair meets the minimum.
OWASP_ARGON2ID_MINIMUMS: tuple[tuple[int, int], ...] = (
    (47_104, 1),
    (19_456, 2),
    (12_288, 3),
    (9_216, 4),
    (7_168, 5),
)
#: Argon2 itself needs 8 KiB per lane; our caps keep one hash (and a hostile stored hash's
#: parameters) from eating the machine.
ARGON2_MIN_MEMORY_KIB = 8
MAX_HASH_MEMORY_KIB = 1024 * 1024
MAX_HASH_TIME_COST = 16
MAX_HASH_PARALLELISM = 16
#: Hash requests that may wait for a free worker before new ones are refused with 503.
DEFAULT_MAX_WAITING = 32
#: Login outcomes a hashing worker may hold while more logins are queued, to hand them to the
#: event loop together (see :mod:`~bastion.identity.passwords.pool`): under a backlog of logins,
#: one login waits for at most two more logins' hashes; the loop's work a login cost 26-41 %
#: less (login9). Other hashing work is never held and never keeps a login waiting.
DEFAULT_HAND_OVER_BATCH = 3
MAX_HAND_OVER_BATCH = 16
#: NIST SP 800-63B §5.1.1.2: at least 8 characters, at least 64 allowed.
NIST_MIN_LENGTH = 8
NIST_MIN_MAX_LENGTH = 64


def meets_owasp_minimum(memory_kib: int, time_cost: int) -> bool:
    """True if (memory, passes) is at least one of OWASP's equivalent Argon2id minimums."""
    return any(memory_kib >= m and time_cost >= t for m, t in OWASP_ARGON2ID_MINIMUMS)


class PasswordSettings(BaseModel):
    """Hashing, hashing-pool, policy and breach-check settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # -- Argon2id --------------------------------------------------------------------------
    hash_memory_kib: int = Field(
        default=19_456, ge=ARGON2_MIN_MEMORY_KIB, le=MAX_HASH_MEMORY_KIB, description="Argon2 m"
    )
    hash_time_cost: int = Field(default=2, ge=1, le=MAX_HASH_TIME_COST, description="Argon2 t")
    hash_parallelism: int = Field(default=1, ge=1, le=MAX_HASH_PARALLELISM, description="Argon2 p")
    allow_insecure_hash_parameters: bool = Field(
        default=False,
        description="Accept Argon2 parameters below OWASP's minimum (tests only).",
    )

    # -- hashing pool ----------------------------------------------------------------------
    hash_max_concurrency: int | None = Field(
        default=None, ge=1, le=256, description="Hashes computed at once; default: CPU count."
    )
    hash_max_waiting: int = Field(
        default=DEFAULT_MAX_WAITING,
        ge=0,
        le=10_000,
        description="Hash requests queued beyond that; more are refused with 503.",
    )
    hash_hand_over_batch: int = Field(
        default=DEFAULT_HAND_OVER_BATCH,
        ge=1,
        le=MAX_HAND_OVER_BATCH,
        description="While logins are queued, finished login verifications handed to the event"
        " loop together (fewer, warmer bursts of its work: more logins/s on a busy core, at most"
        " N - 1 more login hashes of latency under a backlog of logins; other hashing work is"
        " never held); 1: each at once.",
    )

    # -- policy (NIST SP 800-63B) ----------------------------------------------------------
    min_length: int = Field(default=12, ge=NIST_MIN_LENGTH, le=NIST_MIN_MAX_LENGTH)
    max_length: int = Field(default=128, ge=NIST_MIN_MAX_LENGTH, le=256)
    min_strength_score: int = Field(
        default=3, ge=0, le=4, description="Minimum zxcvbn score (0-4)."
    )
    min_character_classes: int = Field(
        default=0,
        ge=0,
        le=4,
        description="Composition rule: lower/upper/digit/other classes required. NIST advises "
        "against composition rules; off (0) by default.",
    )
    history_size: int = Field(
        default=0, ge=0, le=24, description="Refuse the last N passwords; 0: off."
    )

    # -- breach check (Have I Been Pwned, k-anonymity) -------------------------------------
    breach_check: bool = Field(default=False, description="Query the HIBP range API.")
    breach_check_url: str = "https://api.pwnedpasswords.com/range/"
    breach_check_timeout_seconds: float = Field(default=2.0, gt=0, le=10)
    breach_check_on_error: Literal["allow", "reject"] = Field(
        default="allow",
        description="When the breach check cannot answer: accept the password (the local "
        "common-password list still applies) or refuse it until the service is back.",
    )

    @model_validator(mode="after")
    def _secure_hashing(self) -> Self:
        weak = not meets_owasp_minimum(self.hash_memory_kib, self.hash_time_cost)
        if weak and not self.allow_insecure_hash_parameters:
            raise ValueError(
                "Argon2id parameters are below OWASP's minimum (e.g. 19456 KiB and 2 passes); "
                "raise them, or set allow_insecure_hash_parameters=true (tests only)."
            )
        if self.hash_memory_kib < ARGON2_MIN_MEMORY_KIB * self.hash_parallelism:
            raise ValueError("Argon2 needs at least 8 KiB of memory per lane.")
        if not self.breach_check_url.startswith("https://"):
            raise ValueError("breach_check_url must be an https:// URL.")
        return self

    @property
    def hash_parameters_meet_owasp(self) -> bool:
        return meets_owasp_minimum(self.hash_memory_kib, self.hash_time_cost)
