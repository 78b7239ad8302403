"""Bastion: a secure-by-default backend core for Python."""

import sys
from importlib.metadata import PackageNotFoundError, version

# structlog imports rich for console tracebacks whenever rich is installed (the CLI's
# dependencies bring it): ~4 MiB in every server worker, unused (Bastion renders exceptions
# itself, structlog.processors.format_exc_info). So structlog is imported first, without it;
# rich stays importable for everything after.
if "rich" not in sys.modules and "structlog" not in sys.modules:
    sys.modules["rich"] = None  # type: ignore[assignment]  # makes `import rich` fail
    try:
        import structlog  # noqa: F401
    finally:
        del sys.modules["rich"]

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
