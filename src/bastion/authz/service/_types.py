"""Values passed to and returned by :class:`~bastion.authz.service.AuthzService`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bastion.authz.tuples import Tuple

__all__ = ["CheckOutcome", "CheckRequest", "RequestInfo"]


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """Who asks and in which HTTP request (for the audit trail); both optional."""

    scope: Mapping[str, Any] | None = None
    actor: str | None = None
    source: str = "api"


@dataclass(frozen=True, slots=True)
class CheckRequest:
    object: str
    relation: str
    user: str
    context: Mapping[str, Any] | None = None
    contextual_tuples: Sequence[Tuple] = ()
    correlation_id: str = ""


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    allowed: bool
    model_id: str
    reason: str
    result: Any = None
