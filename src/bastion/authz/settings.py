"""Settings of the authorization service (group ``BASTION_AUTHZ``, TOML table ``[authz]``).

Defaults are the safe choice: every allowed decision is recorded, the per-process tuple index
may serve ``MINIMIZE_LATENCY`` checks at most one second stale, and only administrators may use
the OpenFGA-compatible API until other users are named explicitly.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from bastion.authz.store.sql import DEFAULT_MAX_TUPLES_PER_WRITE

__all__ = ["AuthzSettings"]

MAX_ID_CHARS = 64


class AuthzSettings(BaseModel):
    """``BASTION_AUTHZ__<FIELD>``; see ``docs/operations.md`` (Authorization)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_enabled: bool = Field(
        default=True, description="Serve the OpenFGA-compatible API under /stores."
    )
    #: Bastion user ids (service accounts) allowed to query any store: check, batch-check,
    #: expand, list-objects, list-users, read, and reading stores and models. Administrators
    #: may do everything; everyone else is refused (deny by default).
    query_users: tuple[str, ...] = Field(default=(), max_length=1000)
    cache_staleness_seconds: float = Field(
        default=1.0,
        ge=0.0,
        le=60.0,
        description="Bound on how stale the in-memory index may be for MINIMIZE_LATENCY.",
    )
    cache_max_stores: int = Field(default=64, ge=1, le=100_000)
    decision_sample_rate: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description="Share of *allowed* decisions recorded (denied ones always are).",
    )
    max_tuples_per_write: int = Field(default=DEFAULT_MAX_TUPLES_PER_WRITE, ge=1, le=10_000)
    #: Just-in-time elevation (bastion.authz.builtin): the longest grant a request may ask
    #: for, and how long a request waits for another administrator's decision.
    elevation_max_seconds: int = Field(default=4 * 3600, ge=60, le=30 * 24 * 3600)
    elevation_request_ttl_seconds: int = Field(default=24 * 3600, ge=60, le=30 * 24 * 3600)
