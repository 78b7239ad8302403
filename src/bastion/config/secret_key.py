"""The root secret key, and the development fallback that keeps `bastion serve` zero-config."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from bastion.config.errors import ConfigError
from bastion.config.secrets import SecretStr
from bastion.config.settings import Settings

_DEV_KEY_FILE = "secret_key"


def resolve_secret_key(settings: Settings) -> SecretStr:
    """Return the configured key; outside production, read or create one in the data directory.

    The generated file is created with mode 0600 so other local users cannot read it. Production
    never reaches the fallback: the production gate refuses a missing key first.
    """
    if settings.secret_key is not None:
        return settings.secret_key
    if settings.is_production:
        raise ConfigError("BASTION_SECRET_KEY is required in production.")
    path = settings.data_dir / _DEV_KEY_FILE
    if path.exists():
        return SecretStr(path.read_text(encoding="utf-8").strip())
    return SecretStr(_create_key_file(path))


def _create_key_file(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    # O_EXCL: two workers starting together must not overwrite each other's key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip()
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    return value
