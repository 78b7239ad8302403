"""Errors of the rate limiting library, each a problem+json answer with a stable code.

    BastionError
    └── ProtectionError
        ├── RateLimited            429 rate_limited            a limit that applies is exhausted
        ├── TooManyAttempts        429 too_many_attempts       failure backoff in force
        ├── Overloaded             503 overloaded              the worker's concurrency cap
        └── StoreUnavailable       503 protection_unavailable  a fail-closed limit cannot be decided

Every error that asks the client to wait carries ``retry_after`` (whole seconds, at least 1) and
the response ``headers`` the exception handlers add to the answer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from bastion.errors import BastionError

#: The shortest wait ever announced: ``Retry-After: 0`` would invite an immediate retry storm.
MIN_RETRY_AFTER_SECONDS = 1


def retry_after_seconds(seconds: float) -> int:
    """Whole seconds for a ``Retry-After`` field: rounded up, never below one second."""
    return max(MIN_RETRY_AFTER_SECONDS, math.ceil(seconds))


class ProtectionError(BastionError):
    """Base of the errors raised by the protections; carries the answer's extra headers."""

    def __init__(
        self,
        detail: str | None = None,
        *,
        retry_after: float = MIN_RETRY_AFTER_SECONDS,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.retry_after = retry_after_seconds(retry_after)
        self.headers: dict[str, str] = {"Retry-After": str(self.retry_after), **(headers or {})}


class RateLimited(ProtectionError):
    code = "rate_limited"
    status = 429
    title = "Too many requests"

    def __init__(
        self,
        detail: str | None = None,
        *,
        retry_after: float = MIN_RETRY_AFTER_SECONDS,
        headers: dict[str, str] | None = None,
        violated: Sequence[str] = (),
    ) -> None:
        super().__init__(detail, retry_after=retry_after, headers=headers)
        #: Extension members of the problem body: the draft's ``violated-policies``.
        self.extra: dict[str, Any] = {"violated-policies": list(violated)} if violated else {}


class TooManyAttempts(ProtectionError):
    code = "too_many_attempts"
    status = 429
    title = "Too many failed attempts; wait before trying again"


class Overloaded(ProtectionError):
    code = "overloaded"
    status = 503
    expose = True
    title = "The service is overloaded; retry shortly"


class StoreUnavailable(ProtectionError):
    """The limit store cannot decide (e.g. Redis is down) and the limit fails closed."""

    code = "protection_unavailable"
    status = 503
    expose = True
    title = "The service is temporarily unavailable; retry shortly"
