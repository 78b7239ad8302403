"""The production gate refuses each insecure setting and names it."""

from __future__ import annotations

import pytest

from bastion.checks import Severity, run_all
from bastion.config import InsecureConfigError, Settings
from bastion.config.production import enforce

GOOD_KEY = "k" * 48


def secure(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "env": "production",
        "secret_key": GOOD_KEY,
        "docs_enabled": False,
        "allowed_hosts": ["id.example.com"],
        "public_url": "https://id.example.com",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def test_secure_production_settings_start() -> None:
    findings = enforce(secure())
    assert not [f for f in findings if f.blocks_production]


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"secret_key": None}, "secret_key_missing"),
        ({"secret_key": "short"}, "secret_key_short"),
        ({"cookie_secure": False}, "cookie_insecure"),
        ({"debug": True}, "debug_on"),
        (
            {"cors_allow_origins": ["*"], "cors_allow_credentials": True},
            "cors_wildcard_credentials",
        ),
        ({"docs_enabled": True}, "docs_enabled"),
    ],
)
def test_each_insecure_setting_is_refused_by_name(overrides: dict[str, object], code: str) -> None:
    with pytest.raises(InsecureConfigError) as info:
        enforce(secure(**overrides))
    assert [f.code for f in info.value.findings] == [code]
    assert code in str(info.value)
    assert "Fix:" in str(info.value)


def test_refusal_lists_every_problem_at_once() -> None:
    with pytest.raises(InsecureConfigError) as info:
        enforce(secure(secret_key=None, debug=True, cookie_secure=False))
    assert {f.code for f in info.value.findings} == {
        "secret_key_missing",
        "debug_on",
        "cookie_insecure",
    }


def test_development_reports_but_does_not_refuse() -> None:
    findings = enforce(Settings(env="development", debug=True))
    assert "debug_on" in {f.code for f in findings}


def test_refusal_message_never_contains_the_secret() -> None:
    with pytest.raises(InsecureConfigError) as info:
        enforce(secure(secret_key="tiny-secret-value", debug=True))
    assert "tiny-secret-value" not in str(info.value)


def test_findings_sorted_by_severity() -> None:
    findings = run_all(Settings(debug=True, metrics_public=True, trusted_proxies=["0.0.0.0/0"]))
    severities = [f.severity for f in findings]
    assert severities == sorted(severities, reverse=True)
    assert Severity.HIGH in severities
    assert "trusted_proxies_any" in {f.code for f in findings}


def test_opentelemetry_on_is_a_warning_because_spans_carry_query_strings() -> None:
    (finding,) = [f for f in run_all(secure(otel_enabled=True)) if f.code.startswith("otel")]
    assert finding.code == "otel_exports_query_strings"
    assert finding.severity == Severity.MEDIUM
    assert "query string" in finding.message
    assert "BASTION_OTEL_ENABLED=false" in finding.fix
    # A warning, not a refusal: a trusted tracing backend is a legitimate deployment.
    assert not finding.blocks_production
    enforce(secure(otel_enabled=True))


@pytest.mark.parametrize("env", ["development", "production"])
def test_opentelemetry_off_by_default_is_not_reported(env: str) -> None:
    settings = secure(env=env)
    assert settings.otel_enabled is False
    assert not [f for f in run_all(settings) if f.code.startswith("otel")]
