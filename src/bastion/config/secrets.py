"""Secret values that never show themselves.

:class:`pydantic.SecretStr` is the wrapper: its ``repr`` and ``str`` print stars, so a secret in
settings cannot leak through a log line, a traceback's locals or an error message. Read the value
only where it is used, with ``get_secret_value()``.
"""

from __future__ import annotations

from pydantic import SecretStr

__all__ = ["MIN_SECRET_KEY_BYTES", "SecretStr"]

#: A secret key shorter than this is refused in production (256 bits of entropy when random).
MIN_SECRET_KEY_BYTES = 32
