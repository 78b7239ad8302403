"""Typed settings, read once at startup.

Sources, highest priority first: keyword arguments, ``BASTION_<NAME>`` environment variables,
``BASTION_<NAME>_FILE`` (a path whose content is the value, for container secrets), the TOML file
named by ``BASTION_CONFIG_FILE`` (keys are the field names), then the defaults below.

Every default is the secure choice. Loosening one is a named, explicit setting, and
``BASTION_ENV=production`` refuses the insecure ones outright (:mod:`bastion.config.production`).
"""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from bastion.authz.settings import AuthzSettings
from bastion.config.errors import ConfigError
from bastion.identity.mfa.settings import MfaSettings
from bastion.identity.mfa.webauthn.settings import WebAuthnSettings
from bastion.identity.passwords.settings import PasswordSettings
from bastion.identity.tokens.settings import AccessTokenSettings
from bastion.monitoring.settings import MonitoringSettings
from bastion.outbound.settings import OutboundSettings
from bastion.protections.ratelimit.settings import RateLimitSettings

ENV_PREFIX = "BASTION_"
MiB = 1024 * 1024
DAY = 86_400

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _split_list(value: Any) -> Any:
    """Accept a JSON list or a comma-separated string for list settings given as env vars."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


class _FileSecretsSource(PydanticBaseSettingsSource):
    """Reads ``BASTION_<NAME>_FILE``: the value is the file's content, trailing newline removed."""

    def get_field_value(
        self,
        field: FieldInfo,  # noqa: ARG002 - signature fixed by pydantic-settings
        field_name: str,
    ) -> tuple[Any, str, bool]:
        var = f"{ENV_PREFIX}{field_name.upper()}_FILE"
        path = os.environ.get(var)
        if not path:
            return None, field_name, False
        try:
            content = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            # The path is configuration, not a secret: naming it helps the operator.
            raise ConfigError(f"{var} names a file that cannot be read: {exc.strerror}") from None
        return content, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(field, name)
            if value is not None:
                values[key] = value
        return values


class Settings(BaseSettings):
    """Bastion's configuration. Field ``foo`` is read from ``BASTION_FOO``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        # Nested groups: BASTION_PASSWORDS__MIN_LENGTH=14 sets passwords.min_length.
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    # -- deployment ------------------------------------------------------------------------
    env: Literal["development", "test", "production"] = "development"
    debug: bool = Field(
        default=False,
        description="Development only: problem responses include exception detail.",
    )
    data_dir: Path = Path("data")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy async URL; default: SQLite in data_dir.",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Root secret; keys for signing, encryption and audit chains derive from it.",
    )
    public_url: str | None = Field(
        default=None, description="External base URL, e.g. https://id.example.com"
    )

    # -- HTTP core ---------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1", "localhost", "[::1]"],
        description="Host header allowlist; '*.example.com' matches subdomains.",
    )
    trusted_proxies: Annotated[list[IPNetwork], NoDecode] = Field(
        default_factory=list,
        description="Networks whose X-Forwarded-For / Forwarded headers are honoured.",
    )
    cors_allow_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    cors_allow_credentials: bool = False
    cors_max_age: int = Field(default=600, ge=0, le=86400)
    max_body_bytes: int = Field(default=MiB, ge=1024, le=64 * MiB)
    max_json_depth: int = Field(default=32, ge=2, le=256)
    max_json_elements: int = Field(default=10_000, ge=10, le=1_000_000)
    hsts_max_age: int = Field(default=63_072_000, ge=0)
    cookie_secure: bool = Field(default=True, description="Secure flag on every cookie.")
    docs_enabled: bool = Field(default=True, description="Serve /docs (refused in production).")
    metrics_public: bool = Field(
        default=False,
        description="Serve /metrics to any client; otherwise loopback and metrics_allow only.",
    )
    metrics_allow: Annotated[list[IPNetwork], NoDecode] = Field(default_factory=list)
    otel_enabled: bool = Field(
        default=False,
        description=(
            "FastAPI's native OpenTelemetry spans, metrics and logs (they export the raw "
            "query string to whatever provider the process configures)."
        ),
    )

    # -- TLS (served directly by `bastion serve`) ----------------------------------------------
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None

    # -- logging and audit -------------------------------------------------------------------
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_json: bool = True
    audit_queue_size: int = Field(default=10_000, ge=10, le=1_000_000)
    audit_batch_size: int = Field(default=200, ge=1, le=10_000)
    audit_retention_days: int = Field(
        default=365,
        ge=0,
        le=36_500,
        description="Events older than this are purged (a signed checkpoint keeps the chain "
        "verifiable); 0 keeps them forever.",
    )
    audit_checkpoint_interval_seconds: int = Field(
        default=3600,
        ge=0,
        le=30 * DAY,
        description="Sign and store the audit chain head this often; 0 turns it off.",
    )
    audit_log_sink: bool = Field(
        default=True, description="Also write each event as an ECS JSON line to the logs."
    )
    audit_export_file: Path | None = Field(
        default=None, description="Write each event as an ECS JSON line to this file (rotated)."
    )
    audit_export_file_max_bytes: int = Field(default=100 * MiB, ge=MiB, le=10_240 * MiB)
    audit_export_file_backups: int = Field(default=10, ge=1, le=1000)
    audit_syslog_url: str | None = Field(
        default=None,
        description="Send each event as RFC 5424 syslog: udp://host:514 or tcp://host:601.",
    )
    audit_syslog_app_name: str = Field(default="bastion", min_length=1, max_length=48)

    # -- setup -------------------------------------------------------------------------------
    setup_token_ttl_seconds: int = Field(default=3600, ge=60, le=86400)

    # -- identity: passwords and access tokens (nested groups) ----------------------------------
    passwords: PasswordSettings = Field(default_factory=PasswordSettings)
    access_tokens: AccessTokenSettings = Field(default_factory=AccessTokenSettings)
    # Passkeys: RP id, RP name, allowed origins (BASTION_WEBAUTHN__RP_ID=id.example.com).
    webauthn: WebAuthnSettings = Field(default_factory=WebAuthnSettings)
    #: Second factors, login challenges, step-up and the MFA policy (BASTION_MFA__*).
    mfa: MfaSettings = Field(default_factory=MfaSettings)

    # -- protections: rate limits, failure backoff, overload (nested group) ---------------------
    ratelimit: RateLimitSettings = Field(default_factory=RateLimitSettings)

    # -- monitoring: detectors, alert delivery; the SSRF-safe outbound client (nested groups) ----
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    outbound: OutboundSettings = Field(default_factory=OutboundSettings)

    # -- authorization: OpenFGA-compatible API, tuple index, decision log (nested group) ---------
    authz: AuthzSettings = Field(default_factory=AuthzSettings)

    # -- identity: sessions ------------------------------------------------------------------
    session_idle_seconds: int = Field(
        default=3 * DAY,
        ge=300,
        le=90 * DAY,
        description="A session not refreshed for this long ends (idle lifetime).",
    )
    session_absolute_seconds: int = Field(
        default=30 * DAY,
        ge=300,
        le=365 * DAY,
        description="A session ends this long after the login, however active (NIST AAL1: 30 d).",
    )
    refresh_grace_seconds: int = Field(
        default=10,
        ge=0,
        le=60,
        description="A rotated refresh token presented again this soon is a concurrent retry: "
        "it gets the same successor instead of revoking the session.",
    )
    revocation_bound_seconds: int = Field(
        default=5,
        ge=1,
        le=60,
        description="A revoked session's access tokens stop working within this many seconds.",
    )
    email_verification_ttl_seconds: int = Field(default=DAY, ge=600, le=7 * DAY)
    password_reset_ttl_seconds: int = Field(default=1800, ge=300, le=DAY)

    # -- identity: clean-up of ended rows (bastion.identity.cleanup) --------------------------
    cleanup_interval_seconds: int = Field(
        default=3600,
        ge=0,
        le=7 * DAY,
        description="How often each worker deletes ended sessions, used or expired account "
        "tokens and old outbox mails; 0: never (run `bastion cleanup` from a scheduler).",
    )
    cleanup_retention_seconds: int = Field(
        default=7 * DAY,
        ge=DAY,
        le=365 * DAY,
        description="How long those rows are kept after they end (the audit log is the lasting "
        "record).",
    )

    # -- identity: login backoff -------------------------------------------------------------
    login_backoff_threshold: int = Field(
        default=5, ge=1, le=100, description="Failed logins per account before delays start."
    )
    login_backoff_base_delay_seconds: float = Field(default=1.0, gt=0, le=60)
    login_backoff_max_delay_seconds: float = Field(
        default=15 * 60.0,
        ge=1,
        le=15 * 60.0,
        description="The longest lockout: bounded, so nobody can lock an account out for good.",
    )
    login_backoff_half_life_seconds: float = Field(default=3600.0, ge=60, le=7 * DAY)
    login_ip_backoff_threshold: int = Field(
        default=50, ge=1, le=100_000, description="Failed logins per client IP before delays."
    )

    # -- identity: mail ----------------------------------------------------------------------
    mailer: Literal["console", "file", "smtp"] = Field(
        default="console",
        description="console: print mails to stderr (development); file: one JSON file per "
        "mail in data_dir/mail; smtp: send through smtp_host.",
    )
    mail_from: str = Field(default="Bastion <no-reply@localhost>", min_length=3, max_length=320)
    smtp_host: str | None = Field(default=None, max_length=255)
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = Field(default=None, max_length=255)
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = Field(default=True, description="Upgrade with STARTTLS (port 587).")
    smtp_tls: bool = Field(default=False, description="Implicit TLS from the start (port 465).")
    smtp_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    smtp_ca_file: Path | None = Field(
        default=None,
        description="PEM CA bundle the relay's certificate must chain to, instead of the "
        "system's CAs (a relay with a private CA). Verification is never turned off.",
    )

    @field_validator(
        "allowed_hosts", "trusted_proxies", "cors_allow_origins", "metrics_allow", mode="before"
    )
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("trusted_proxies", "metrics_allow", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [
                ipaddress.ip_network(v, strict=False) if isinstance(v, str) else v for v in value
            ]
        return value

    @model_validator(mode="after")
    def _consistent_identity(self) -> Settings:
        if self.session_idle_seconds > self.session_absolute_seconds:
            raise ValueError("session_idle_seconds cannot exceed session_absolute_seconds")
        if self.mailer == "smtp" and not self.smtp_host:
            raise ValueError("mailer 'smtp' needs smtp_host")
        if self.smtp_tls and self.smtp_starttls:
            raise ValueError("choose smtp_tls (implicit TLS) or smtp_starttls, not both")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - .env files not read
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - replaced by _FILE
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [
            init_settings,
            env_settings,
            _FileSecretsSource(settings_cls),
        ]
        toml_path = os.environ.get(f"{ENV_PREFIX}CONFIG_FILE")
        if toml_path:
            if not Path(toml_path).is_file():
                raise ConfigError(f"{ENV_PREFIX}CONFIG_FILE names a missing file: {toml_path}")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
        return tuple(sources)

    # -- derived values ----------------------------------------------------------------------
    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'bastion.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")
