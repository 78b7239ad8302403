"""`bastion check` identity findings."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from tests.conftest import migrated

from bastion.checks import run_all
from bastion.clock import FrozenClock
from bastion.config import Settings
from bastion.config.errors import InsecureConfigError
from bastion.config.production import enforce
from bastion.identity.audits import signing_key_findings
from bastion.identity.passwords import PasswordSettings
from bastion.services import build_services


def codes(settings: Settings) -> set[str]:
    return {f.code for f in run_all(settings)}


def test_defaults_have_no_identity_findings_but_the_breach_check(tmp_path: Path) -> None:
    found = codes(Settings(env="test", data_dir=tmp_path, secret_key="k" * 48))
    identity = {
        "password_hash_weak",
        "access_token_ttl_long",
        "session_lifetime_long",
        "refresh_grace_long",
        "revocation_bound_long",
        "mailer_not_smtp",
        "smtp_cleartext",
    }
    assert not found & identity
    assert "password_breach_check_off" in found


def test_weakened_settings_are_reported(tmp_path: Path) -> None:
    settings = Settings(
        env="test",
        data_dir=tmp_path,
        secret_key="k" * 48,
        passwords=PasswordSettings(
            hash_memory_kib=1024, hash_time_cost=1, allow_insecure_hash_parameters=True
        ),
        access_tokens={"ttl_seconds": 3600},
        session_absolute_seconds=90 * 86_400,
        refresh_grace_seconds=60,
        revocation_bound_seconds=60,
    )
    assert {
        "password_hash_weak",
        "access_token_ttl_long",
        "session_lifetime_long",
        "refresh_grace_long",
        "revocation_bound_long",
    } <= codes(settings)


def test_console_mailer_in_production_is_reported(tmp_path: Path) -> None:
    settings = Settings(env="production", data_dir=tmp_path, secret_key="k" * 48)
    assert "mailer_not_smtp" in codes(settings)


def test_smtp_without_tls_is_reported(tmp_path: Path) -> None:
    base = {"env": "test", "data_dir": tmp_path, "secret_key": "k" * 48, "mailer": "smtp"}
    clear = Settings(**base, smtp_host="mail.example", smtp_starttls=False, smtp_tls=False)
    assert "smtp_cleartext" in codes(clear)
    for tls in ({"smtp_starttls": True}, {"smtp_starttls": False, "smtp_tls": True}):
        assert "smtp_cleartext" not in codes(Settings(**base, smtp_host="mail.example", **tls))


def test_production_refuses_cleartext_smtp_to_another_host(tmp_path: Path) -> None:
    base = {
        "env": "production",
        "data_dir": tmp_path,
        "secret_key": "k" * 48,
        "cookie_secure": True,
        "docs_enabled": False,
        "mailer": "smtp",
        "smtp_starttls": False,
        "smtp_tls": False,
    }
    with pytest.raises(InsecureConfigError) as refused:
        enforce(Settings(**base, smtp_host="mail.example"))
    assert "smtp_cleartext" in str(refused.value)
    # A relay on the loopback interface (a local MTA) keeps mail off the network: reported only.
    for local in ("localhost", "127.0.0.1", "::1"):
        findings = {f.code: f for f in enforce(Settings(**base, smtp_host=local))}
        assert not findings["smtp_cleartext"].blocks_production


async def test_an_old_signing_key_is_reported(tmp_path: Path) -> None:
    settings = Settings(env="test", data_dir=tmp_path, secret_key="k" * 48)
    await migrated(settings.effective_database_url)
    clock = FrozenClock()
    services = build_services(settings, clock=clock)
    try:
        assert await signing_key_findings(services) == []  # no key yet
        await services.identity.signing.ensure()
        assert await signing_key_findings(services) == []
        clock.advance(timedelta(days=91))
        # The key reached not_after: a new one signs (automatic rotation)...
        await services.identity.signing.ensure()
        assert await signing_key_findings(services) == []
    finally:
        await services.identity.passwords.aclose()
        await services.database.dispose()
    # ...but a key made under a longer lifetime than configured now is overdue.
    shorter = Settings(
        env="test", data_dir=tmp_path, secret_key="k" * 48, access_tokens={"key_lifetime_days": 30}
    )
    services = build_services(shorter, clock=clock)
    try:
        clock.advance(timedelta(days=31))
        (finding,) = await signing_key_findings(services)
        assert finding.code == "signing_key_old"
    finally:
        await services.identity.passwords.aclose()
        await services.database.dispose()
