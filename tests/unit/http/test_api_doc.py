"""docs/api.md lists the code of every error a client can receive."""

from __future__ import annotations

from pathlib import Path

import bastion.app  # noqa: F401 - imports every domain wired into the app
from bastion.config.errors import ConfigError
from bastion.errors import BastionError

API_DOC = Path(__file__).parents[3] / "docs" / "api.md"


def _subclasses(cls: type[BastionError]) -> set[type[BastionError]]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | _subclasses(sub)
    return found


def client_facing_codes() -> set[str]:
    """Codes a client can see: 4xx errors and exposed 5xx ones.

    Configuration errors stop the process at startup; other 5xx errors are masked as
    ``internal_error``; ``*_error`` codes belong to abstract bases of an error tree.
    """
    return {
        cls.code
        for cls in _subclasses(BastionError)
        if not issubclass(cls, ConfigError)
        and cls.__module__.startswith("bastion.")
        and (cls.status < 500 or cls.expose)
        and not (cls.code == "error" or (cls.code.endswith("_error") and cls.__subclasses__()))
    }


def test_every_client_facing_error_code_is_documented() -> None:
    text = API_DOC.read_text(encoding="utf-8")
    codes = client_facing_codes()
    assert {"internal_error", "rate_limited", "body_too_large"} <= codes
    missing = sorted(code for code in codes if f"`{code}`" not in text)
    assert not missing, f"error codes missing from docs/api.md: {missing}"
