"""Settings: sources, list parsing, secrets that never show, and the _FILE convention."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from bastion.config import ConfigError, Settings
from bastion.config.secret_key import resolve_secret_key

SECRET = "correct-horse-battery-staple-0123456789-abcdef"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("BASTION_"):
            monkeypatch.delenv(name)


def test_defaults_are_secure() -> None:
    s = Settings()
    assert s.env == "development"
    assert s.debug is False
    assert s.cookie_secure is True
    assert s.cors_allow_origins == []
    assert s.cors_allow_credentials is False
    assert s.trusted_proxies == []
    assert s.metrics_public is False
    assert s.max_body_bytes == 1024 * 1024
    assert s.host == "127.0.0.1"
    assert s.port == 8000


def test_env_vars_and_comma_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_ALLOWED_HOSTS", "api.example.com, *.example.org")
    monkeypatch.setenv("BASTION_TRUSTED_PROXIES", '["10.0.0.0/8", "2001:db8::1"]')
    monkeypatch.setenv("BASTION_PORT", "9000")
    s = Settings()
    assert s.allowed_hosts == ["api.example.com", "*.example.org"]
    assert s.trusted_proxies == [
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("2001:db8::1/128"),
    ]
    assert s.port == 9000


def test_unknown_setting_in_toml_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "bastion.toml"
    cfg.write_text('port = 8100\nallowed_hosts = ["a.example"]\nno_such_setting = 1\n')
    monkeypatch.setenv("BASTION_CONFIG_FILE", str(cfg))
    with pytest.raises(ValidationError, match="no_such_setting"):
        Settings()


def test_toml_file_and_env_priority(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "bastion.toml"
    cfg.write_text('port = 8100\nallowed_hosts = ["a.example"]\n')
    monkeypatch.setenv("BASTION_CONFIG_FILE", str(cfg))
    monkeypatch.setenv("BASTION_PORT", "8200")
    s = Settings()
    assert s.allowed_hosts == ["a.example"]
    assert s.port == 8200  # the environment wins over the file


def test_missing_toml_file_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_CONFIG_FILE", "/nonexistent/bastion.toml")
    with pytest.raises(ConfigError, match="missing file"):
        Settings()


def test_secret_from_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "key"
    path.write_text(SECRET + "\n")
    monkeypatch.setenv("BASTION_SECRET_KEY_FILE", str(path))
    s = Settings()
    assert s.secret_key is not None
    assert s.secret_key.get_secret_value() == SECRET


def test_unreadable_secret_file_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_SECRET_KEY_FILE", "/nonexistent/secret")
    with pytest.raises(ConfigError, match="BASTION_SECRET_KEY_FILE"):
        Settings()


def test_secret_never_in_repr_str_or_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings(secret_key=SECRET)
    assert SECRET not in repr(s)
    assert SECRET not in str(s)
    assert SECRET not in s.model_dump_json()
    monkeypatch.setenv("BASTION_SECRET_KEY", SECRET)
    monkeypatch.setenv("BASTION_PORT", "not-a-port")
    with pytest.raises(ValidationError) as info:
        Settings()
    assert SECRET not in str(info.value)


def test_invalid_values_rejected() -> None:
    with pytest.raises(ValidationError):
        Settings(max_body_bytes=10)
    with pytest.raises(ValidationError):
        Settings(env="staging")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Settings(trusted_proxies=["not-a-network"])  # type: ignore[list-item]


def test_dev_secret_key_is_generated_once_with_private_mode(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path)
    first = resolve_secret_key(s).get_secret_value()
    second = resolve_secret_key(s).get_secret_value()
    assert first == second
    assert len(first) >= 48
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_production_never_generates_a_key(tmp_path: Path) -> None:
    s = Settings(env="production", data_dir=tmp_path)
    with pytest.raises(ConfigError):
        resolve_secret_key(s)
    assert not (tmp_path / "secret_key").exists()


def test_default_database_is_sqlite_in_data_dir(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path)
    assert s.is_sqlite
    assert s.effective_database_url.endswith(str(tmp_path / "bastion.db"))
