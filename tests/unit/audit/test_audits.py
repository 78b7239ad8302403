"""`bastion check` findings for the audit trail."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.checks import run_all
from bastion.config.settings import Settings


def codes(tmp_path: Path, **values: object) -> set[str]:
    settings = Settings(env="test", data_dir=tmp_path, secret_key="s" * 48, **values)  # type: ignore[arg-type]
    return {f.code for f in run_all(settings) if f.code.startswith("audit_")}


def test_the_defaults_raise_no_audit_finding(tmp_path: Path) -> None:
    assert codes(tmp_path) == set()


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"audit_checkpoint_interval_seconds": 0}, {"audit_checkpoints_off"}),
        ({"audit_checkpoint_interval_seconds": 7 * 86_400}, {"audit_checkpoints_rare"}),
        ({"audit_retention_days": 0}, {"audit_retention_off"}),
        ({"audit_syslog_url": "udp://127.0.0.1:514"}, {"audit_syslog_udp"}),
        ({"audit_syslog_url": "tcp://127.0.0.1:601"}, set()),
        ({"audit_syslog_url": "http://siem"}, {"audit_syslog_url_invalid"}),
        ({"audit_log_sink": False}, {"audit_siem_copy_off"}),
        ({"audit_log_sink": False, "audit_export_file": "/var/log/bastion/audit.jsonl"}, set()),
        ({"audit_log_sink": False, "audit_syslog_url": "tcp://127.0.0.1:601"}, set()),
    ],
)
def test_weakened_audit_settings_are_reported(
    tmp_path: Path, values: dict[str, object], expected: set[str]
) -> None:
    assert codes(tmp_path, **values) == expected
