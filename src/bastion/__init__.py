"""Bastion: a secure-by-default backend core for Python."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bastion")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

# Imported after __version__: the app module reads it.
from bastion.app import create_app
from bastion.config import ConfigError, InsecureConfigError, Settings
from bastion.errors import BastionError

__all__ = [
    "BastionError",
    "ConfigError",
    "InsecureConfigError",
    "Settings",
    "__version__",
    "create_app",
]
