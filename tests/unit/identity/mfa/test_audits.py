"""`bastion check` findings for weakened MFA settings."""

from __future__ import annotations

from pathlib import Path

from bastion.checks import Severity, run_all
from bastion.config import Settings

MFA_CODES = {"mfa_admins_not_required", "mfa_step_up_window_long", "mfa_challenge_failures_high"}


def _settings(tmp_path: Path, **mfa: object) -> Settings:
    return Settings(env="test", data_dir=tmp_path, secret_key="k" * 48, mfa=mfa)


def test_defaults_have_no_mfa_findings(tmp_path: Path) -> None:
    assert not {f.code for f in run_all(_settings(tmp_path))} & MFA_CODES


def test_weakened_settings_are_reported(tmp_path: Path) -> None:
    weak = _settings(
        tmp_path,
        required_for_admins=False,
        step_up_max_age_seconds=3600,
        challenge_max_failures=20,
    )
    found = {f.code: f for f in run_all(weak)}
    assert set(found) >= MFA_CODES
    assert found["mfa_admins_not_required"].severity is Severity.HIGH
    assert "BASTION_MFA__REQUIRED_FOR_ADMINS" in found["mfa_admins_not_required"].fix
