"""docs/api.md lists every error code of the HTTP core."""

from __future__ import annotations

from pathlib import Path

from bastion.http import errors

API_DOC = Path(__file__).parents[3] / "docs" / "api.md"


def test_every_http_error_code_is_documented() -> None:
    text = API_DOC.read_text(encoding="utf-8")
    codes = {
        cls.code
        for cls in vars(errors).values()
        if isinstance(cls, type)
        and issubclass(cls, errors.HttpError)
        and cls is not errors.HttpError
    }
    missing = sorted(code for code in codes if f"`{code}`" not in text)
    assert not missing, f"error codes missing from docs/api.md: {missing}"
