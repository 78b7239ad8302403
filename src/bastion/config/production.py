"""Audits of the core settings, and the production gate that refuses insecure ones."""

from __future__ import annotations

from collections.abc import Iterator

from bastion.checks import Finding, Severity, register, run_all
from bastion.config.errors import InsecureConfigError
from bastion.config.secrets import MIN_SECRET_KEY_BYTES
from bastion.config.settings import Settings


@register
def audit_core(settings: Settings) -> Iterator[Finding]:
    """Findings for the deployment, HTTP core and logging settings."""
    key = settings.secret_key
    if key is None:
        yield Finding(
            "secret_key_missing",
            Severity.HIGH,
            "No BASTION_SECRET_KEY is set; development generates one in the data directory.",
            "Set BASTION_SECRET_KEY (or BASTION_SECRET_KEY_FILE) to at least 32 random bytes, "
            "e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`.",
            blocks_production=True,
        )
    elif len(key.get_secret_value().encode()) < MIN_SECRET_KEY_BYTES:
        yield Finding(
            "secret_key_short",
            Severity.HIGH,
            f"BASTION_SECRET_KEY is shorter than {MIN_SECRET_KEY_BYTES} bytes.",
            "Use at least 32 random bytes (256 bits).",
            blocks_production=True,
        )
    if not settings.cookie_secure:
        yield Finding(
            "cookie_insecure",
            Severity.HIGH,
            "Cookies are sent without the Secure flag (plain HTTP): sessions can be stolen "
            "on the network.",
            "Set BASTION_COOKIE_SECURE=true and serve over HTTPS.",
            blocks_production=True,
        )
    if settings.debug:
        yield Finding(
            "debug_on",
            Severity.HIGH,
            "Debug mode is on: error responses include exception details.",
            "Set BASTION_DEBUG=false.",
            blocks_production=True,
        )
    if settings.cors_allow_credentials and "*" in settings.cors_allow_origins:
        yield Finding(
            "cors_wildcard_credentials",
            Severity.HIGH,
            "CORS allows any origin with credentials: any web site can act as the user.",
            "List the exact origins in BASTION_CORS_ALLOW_ORIGINS.",
            blocks_production=True,
        )
    elif "*" in settings.cors_allow_origins:
        yield Finding(
            "cors_wildcard",
            Severity.MEDIUM,
            "CORS allows any origin to read responses.",
            "List the exact origins in BASTION_CORS_ALLOW_ORIGINS.",
        )
    if settings.docs_enabled:
        yield Finding(
            "docs_enabled",
            Severity.MEDIUM if settings.is_production else Severity.INFO,
            "The interactive API docs page (/docs) and /openapi.json are served.",
            "Set BASTION_DOCS_ENABLED=false in production.",
            blocks_production=True,
        )
    if "*" in settings.allowed_hosts:
        yield Finding(
            "allowed_hosts_wildcard",
            Severity.HIGH if settings.is_production else Severity.MEDIUM,
            "Any Host header is accepted (host header injection, cache poisoning).",
            "List the served host names in BASTION_ALLOWED_HOSTS.",
        )
    if settings.metrics_public:
        yield Finding(
            "metrics_public",
            Severity.MEDIUM,
            "/metrics is served to any client and reveals traffic and error rates.",
            "Set BASTION_METRICS_PUBLIC=false and list scrapers in BASTION_METRICS_ALLOW.",
        )
    for net in settings.trusted_proxies:
        if net.prefixlen == 0:
            yield Finding(
                "trusted_proxies_any",
                Severity.HIGH,
                f"Every address is a trusted proxy ({net}): any client can spoof its IP.",
                "List only your load balancers' networks in BASTION_TRUSTED_PROXIES.",
            )
    if settings.is_production and (settings.tls_certfile is None and not settings.public_url):
        yield Finding(
            "public_url_missing",
            Severity.LOW,
            "Neither TLS files nor BASTION_PUBLIC_URL are set; HSTS is sent only when a request "
            "arrives over HTTPS.",
            "Serve TLS directly or set BASTION_PUBLIC_URL=https://... behind a TLS proxy.",
        )


@register
def audit_telemetry(settings: Settings) -> Iterator[Finding]:
    """Telemetry that exports personal data to a third party."""
    if settings.otel_enabled:
        yield Finding(
            "otel_exports_query_strings",
            Severity.MEDIUM,
            "FastAPI's OpenTelemetry instrumentation is on: its spans carry raw query strings "
            "(the admin e-mail search `q=`, the audit log's `actor=` and `ip=` filters), so "
            "personal data is exported to the tracing backend.",
            "Set BASTION_OTEL_ENABLED=false, or send the telemetry only to a backend trusted "
            "with personal data.",
        )


def enforce(settings: Settings) -> list[Finding]:
    """Raise :class:`InsecureConfigError` in production if any blocking finding is present.

    Returns all findings, so the caller can log the non-blocking ones.
    """
    findings = run_all(settings)
    if settings.is_production:
        blocking = [f for f in findings if f.blocks_production]
        if blocking:
            raise InsecureConfigError(blocking)
    return findings
