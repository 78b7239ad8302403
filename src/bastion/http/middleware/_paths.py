"""Path templates (``/v1/uploads/{id}``) matched against ``scope["path"]`` outside the router.

Middleware runs before routing, so per-path settings (a larger body limit for an upload route,
a form endpoint exempt from the JSON check) are declared as Starlette path templates and matched
here. ``scope["path"]`` includes any ``root_path`` prefix: templates must include it too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Generic, TypeVar

from starlette.routing import compile_path

V = TypeVar("V")


class PathRules(Generic[V]):
    """An ordered list of ``(template, value)``; :meth:`lookup` returns the first match's value.

    Templates without parameters are compared as plain strings (no regex on the request path).
    """

    def __init__(self, rules: Iterable[tuple[str, V]]) -> None:
        self._rules: list[tuple[str | None, re.Pattern[str] | None, V]] = []
        for template, value in rules:
            if not template.startswith("/"):
                raise ValueError(f"a path template must start with '/': {template!r}")
            if "{" in template:
                self._rules.append((None, compile_path(template)[0], value))
            else:
                self._rules.append((template, None, value))

    def __bool__(self) -> bool:
        return bool(self._rules)

    def lookup(self, path: str) -> V | None:
        for literal, pattern, value in self._rules:
            if path == literal or (pattern is not None and pattern.match(path)):
                return value
        return None
