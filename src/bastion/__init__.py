"""Bastion: a secure-by-default backend core for Python."""

import importlib
import sys
import typing
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

if typing.TYPE_CHECKING:
    from bastion.app import create_app
    from bastion.config import ConfigError, InsecureConfigError, Settings
    from bastion.errors import BastionError

#: Imported on first use (PEP 562), not with the package: ``bastion.app`` imports every domain
#: (FastAPI, SQLAlchemy, the routes), ~2.5 s of CPU on a slow host, and a CLI command or an SDK
#: import that needs none of it must not pay for it.
_LAZY = {
    "create_app": "bastion.app",
    "ConfigError": "bastion.config",
    "InsecureConfigError": "bastion.config",
    "Settings": "bastion.config",
    "BastionError": "bastion.errors",
}


def __getattr__(name: str) -> typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bastion' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "BastionError",
    "ConfigError",
    "InsecureConfigError",
    "Settings",
    "__version__",
    "create_app",
]
