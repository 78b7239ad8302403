"""Typed settings of multi-factor authentication, nested in :class:`bastion.config.Settings` as
``mfa`` (``BASTION_MFA__REQUIRED_FOR_ADMINS``, ``BASTION_MFA__STEP_UP_MAX_AGE_SECONDS``, ...).

Secure by default: administrators must have a second factor, sensitive operations need an
authentication of the last five minutes, and a login challenge lives five minutes. Turning the
admin requirement off is an explicit setting that ``bastion check`` reports.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["MfaSettings"]


class MfaSettings(BaseModel):
    """Policy and lifetimes of second factors, login challenges and step-up."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    required_for_admins: bool = Field(
        default=True,
        description="Administrators without a second factor may only enroll one.",
    )
    required_for_all: bool = Field(
        default=False,
        description="Every user without a second factor may only enroll one.",
    )
    challenge_ttl_seconds: int = Field(
        default=300, ge=30, le=900, description="Lifetime of a login's second-factor challenge."
    )
    challenge_max_failures: int = Field(
        default=5, ge=1, le=20, description="Wrong codes that void a login challenge."
    )
    step_up_max_age_seconds: int = Field(
        default=300,
        ge=30,
        le=3600,
        description="Sensitive operations need an authentication at most this old.",
    )
    totp_issuer: str = Field(
        default="Bastion",
        min_length=1,
        max_length=64,
        pattern=r"^[^:]+$",
        description="Issuer shown by authenticator apps (no colon: it separates the label).",
    )
