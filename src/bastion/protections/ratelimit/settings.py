"""Rate limit settings and the default policy table.

The defaults are strict for the endpoints attackers automate (login, registration, password
reset, email verification, MFA, token) and fail closed there; the general per-IP and per-user
budgets for the rest of the API are generous and fail open to a local fallback. Every limit is a
setting: ``policies`` entries are merged by name onto the defaults, so a deployment overrides one
field (``{"login": {"limit": 50}}``), disables a default (``{"mfa": {"enabled": false}}``) or adds
a policy without restating the table.

The path templates below must match the routes of the identity and OAuth endpoints.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from bastion.protections.ratelimit.backoff import (
    PASSWORD_BACKOFF,
    RECOVERY_CODE_BACKOFF,
    TOTP_BACKOFF,
    BackoffPolicy,
)
from bastion.protections.ratelimit.concurrency import DEFAULT_MAX_CONCURRENT
from bastion.protections.ratelimit.failover import DEFAULT_PROBE_INTERVAL_SECONDS
from bastion.protections.ratelimit.interfaces import DEFAULT_TIMEOUT_SECONDS, FailureMode
from bastion.protections.ratelimit.keys import DEFAULT_IPV6_PREFIX
from bastion.protections.ratelimit.memory import DEFAULT_MAX_KEYS
from bastion.protections.ratelimit.policies import KeyKind, Policy
from bastion.protections.ratelimit.services import DEFAULT_KEY_PREFIX

# The identity (issue 4) and MFA (issue 5) endpoints each policy guards.
LOGIN_PATHS = (
    "/v1/sessions",
    "/v1/setup",
    "/v1/account/password",
    # Passwordless passkey logins (the begin step is bounded by the general budgets).
    "/v1/sessions/webauthn/finish",
)
REGISTRATION_PATHS = ("/v1/accounts",)
PASSWORD_RESET_PATHS = ("/v1/password/forgot", "/v1/password/reset")
EMAIL_VERIFICATION_PATHS = ("/v1/accounts/verify-email{rest:path}",)
MFA_PATHS = ("/v1/sessions/mfa{rest:path}", "/v1/account/mfa{rest:path}")
TOKEN_PATHS = (
    "/v1/sessions/refresh",
    "/v1/oauth/token",
    "/v1/oauth/introspect",
    "/v1/oauth/revoke",
)

_CLOSED = FailureMode.FAIL_CLOSED.value
_OPEN = FailureMode.FAIL_OPEN.value

DEFAULT_POLICIES: dict[str, dict[str, Any]] = {
    # Credential stuffing spreads guesses over many accounts: 20 attempts per IP per 15 minutes.
    # Guessing one account is slowed further by the password backoff.
    "login": {"limit": 20, "window_seconds": 900, "paths": LOGIN_PATHS, "methods": ["POST"]},
    # Mass account creation (spam, fake accounts).
    "registration": {"limit": 5, "window_seconds": 3600, "paths": REGISTRATION_PATHS},
    # Each request sends an email: mail bombing of a victim, and the sender's reputation.
    "password-reset": {"limit": 5, "window_seconds": 3600, "paths": PASSWORD_RESET_PATHS},
    "email-verification": {"limit": 10, "window_seconds": 3600, "paths": EMAIL_VERIFICATION_PATHS},
    # A 6-digit code has 10**6 values: guessing must stay hopeless within a code's lifetime.
    # Only requests that submit or change something count: listing one's factors guesses nothing.
    "mfa": {
        "limit": 10,
        "window_seconds": 900,
        "paths": MFA_PATHS,
        "methods": ["POST", "PUT", "PATCH", "DELETE"],
    },
    # Client secret guessing and token farming, per source and per OAuth client.
    "token": {"limit": 60, "window_seconds": 60, "paths": TOKEN_PATHS},
    "token-client": {
        "limit": 300,
        "window_seconds": 60,
        "paths": TOKEN_PATHS,
        "keys": [KeyKind.CLIENT.value],
    },
    # The general budgets for everything (the routes above included).
    "api-ip": {"limit": 600, "window_seconds": 60, "failure_mode": _OPEN},
    "api-user": {
        "limit": 1200,
        "window_seconds": 60,
        "keys": [KeyKind.USER.value],
        "failure_mode": _OPEN,
    },
}


class PolicySettings(BaseModel):
    """One policy: ``limit`` requests per ``window_seconds``, bursts of ``burst``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    limit: int = Field(ge=1, le=10_000_000)
    window_seconds: float = Field(gt=0, le=366 * 86_400)
    burst: int | None = Field(default=None, ge=1, le=10_000_000)
    keys: tuple[KeyKind, ...] = (KeyKind.IP,)
    failure_mode: FailureMode = FailureMode.FAIL_CLOSED
    paths: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()

    def policy(self, name: str) -> Policy:
        return Policy.per(
            name,
            self.limit,
            self.window_seconds,
            burst=self.burst,
            keys=self.keys,
            failure_mode=self.failure_mode,
            paths=self.paths,
            methods=self.methods,
        )


class BackoffSettings(BaseModel):
    """The failure backoff of one kind of secret."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    threshold: int = Field(ge=0, le=1000)
    base_delay_seconds: float = Field(gt=0, le=3600)
    max_delay_seconds: float = Field(gt=0, le=86_400)
    half_life_seconds: float = Field(gt=0, le=30 * 86_400)

    @classmethod
    def of(cls, policy: BackoffPolicy) -> BackoffSettings:
        return cls(
            threshold=policy.threshold,
            base_delay_seconds=policy.base_delay,
            max_delay_seconds=policy.max_delay,
            half_life_seconds=policy.half_life,
        )

    def policy(self, name: str) -> BackoffPolicy:
        return BackoffPolicy(
            name=name,
            threshold=self.threshold,
            base_delay=self.base_delay_seconds,
            max_delay=self.max_delay_seconds,
            half_life=self.half_life_seconds,
        )


def _default_backoff() -> dict[str, BackoffSettings]:
    policies = (PASSWORD_BACKOFF, TOTP_BACKOFF, RECOVERY_CODE_BACKOFF)
    return {p.name: BackoffSettings.of(p) for p in policies}


class RateLimitSettings(BaseModel):
    """Settings of the rate limits, the failure backoff and the concurrency cap."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    enabled: bool = True
    storage: Literal["memory", "redis"] = Field(
        default="memory",
        description="memory: per worker (one worker only); redis: shared by every worker.",
    )
    redis_url: SecretStr | None = Field(default=None, description="e.g. redis://host:6379/0")
    redis_timeout_seconds: float = Field(default=DEFAULT_TIMEOUT_SECONDS, gt=0, le=10)
    failover_probe_seconds: float = Field(default=DEFAULT_PROBE_INTERVAL_SECONDS, gt=0, le=300)
    key_prefix: str = Field(default=DEFAULT_KEY_PREFIX, min_length=1, max_length=64)
    policies: dict[str, PolicySettings] = Field(default_factory=dict)
    exempt_paths: tuple[str, ...] = ()
    emit_headers: bool = True
    ipv6_prefix: int = Field(default=DEFAULT_IPV6_PREFIX, ge=32, le=128)
    memory_max_keys: int = Field(default=DEFAULT_MAX_KEYS, ge=100, le=10_000_000)
    max_concurrent_requests: int = Field(default=DEFAULT_MAX_CONCURRENT, ge=1, le=100_000)
    backoff: dict[str, BackoffSettings] = Field(default_factory=_default_backoff)

    @field_validator("policies", mode="before")
    @classmethod
    def _merge_onto_defaults(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        merged = {name: dict(spec) for name, spec in DEFAULT_POLICIES.items()}
        for name, given in value.items():
            override = (
                given.model_dump(exclude_unset=True) if isinstance(given, BaseModel) else given
            )
            merged[name] = {**merged.get(name, {}), **override}
        return merged

    @field_validator("backoff", mode="before")
    @classmethod
    def _merge_backoff(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        merged: dict[str, Any] = {n: s.model_dump() for n, s in _default_backoff().items()}
        for name, given in value.items():
            override = (
                given.model_dump(exclude_unset=True) if isinstance(given, BaseModel) else given
            )
            merged[name] = {**merged.get(name, {}), **override}
        return merged

    @model_validator(mode="after")
    def _consistent(self) -> RateLimitSettings:
        if self.storage == "redis" and self.redis_url is None:
            raise ValueError("storage 'redis' needs redis_url")
        self.build_policies()  # names, templates and key kinds are checked here, at startup
        return self

    def build_policies(self) -> tuple[Policy, ...]:
        return tuple(spec.policy(name) for name, spec in self.policies.items() if spec.enabled)

    def backoff_policy(self, name: str) -> BackoffPolicy:
        return self.backoff[name].policy(name)
