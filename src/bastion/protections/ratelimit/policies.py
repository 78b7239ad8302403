"""Policies: a named rate, what it is counted per, where it applies and how it fails.

A :class:`Policy` is counted per the request attributes in ``keys`` (client IP, authenticated
user, OAuth client, matched route template; none = one bucket shared by every caller). It applies
to requests whose path matches one of its ``paths`` templates and whose method is in ``methods``
(empty = everywhere / every method). Policies compose: a request must pass every policy that
applies to it (see :class:`PolicyTable`). The default table is in
:mod:`bastion.protections.ratelimit.settings`.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from starlette.routing import compile_path

from bastion.protections.ratelimit.gcra import NS_PER_SECOND, Rate
from bastion.protections.ratelimit.interfaces import FailureMode

#: Answers of :meth:`PolicyTable.match` remembered; paths invented by a client only empty it.
MATCH_CACHE_SIZE = 4096
#: Longer paths are matched every time, never remembered (memory stays bounded).
MATCH_CACHE_MAX_PATH = 256

#: Policy names appear in keys and, quoted, in the RateLimit header fields (RFC 8941 strings).
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


class KeyKind(enum.StrEnum):
    """A request attribute a policy is counted per."""

    IP = "ip"  # the proxy-aware client IP (IPv6 folded to its /64 network)
    USER = "user"  # the authenticated user
    CLIENT = "client"  # the OAuth client
    ROUTE = "route"  # the path template that matched (one bucket per endpoint)


@dataclass(frozen=True, slots=True)
class Policy:
    """A named :class:`~bastion.protections.ratelimit.gcra.Rate` and where it applies."""

    name: str
    rate: Rate
    keys: tuple[KeyKind, ...] = (KeyKind.IP,)
    # Secure by default: a policy that nobody classified refuses requests when Redis is down.
    failure_mode: FailureMode = FailureMode.FAIL_CLOSED
    paths: tuple[str, ...] = ()
    methods: frozenset[str] = frozenset()
    #: This policy as an item of the ``RateLimit-Policy`` field: ``"name";q=burst;w=seconds``.
    field_item: str = field(init=False, repr=False, compare=False)
    #: ``field_item`` as ASCII bytes, and the start of this policy's ``RateLimit`` item
    #: (``"name";r=``): built once, not per response.
    field_bytes: bytes = field(init=False, repr=False, compare=False)
    limit_prefix: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"policy names are [a-z0-9_.-], at most 64 characters: {self.name!r}")
        object.__setattr__(self, "keys", tuple(KeyKind(k) for k in self.keys))
        if len(set(self.keys)) != len(self.keys):
            raise ValueError(f"policy {self.name!r} lists a key kind twice")
        if KeyKind.ROUTE in self.keys and not self.paths:
            # Keyed by the raw path, a client would get a fresh bucket per URL it invents.
            raise ValueError(f"policy {self.name!r} is keyed by route, so it needs paths")
        for template in self.paths:
            if not template.startswith("/"):
                raise ValueError(f"a path template must start with '/': {template!r}")
        object.__setattr__(self, "methods", frozenset(m.upper() for m in self.methods))
        window = math.ceil(self.rate.tolerance_ns / NS_PER_SECOND)
        object.__setattr__(self, "field_item", f'"{self.name}";q={self.rate.burst};w={window}')
        object.__setattr__(self, "field_bytes", self.field_item.encode("ascii"))
        object.__setattr__(self, "limit_prefix", f'"{self.name}";r='.encode("ascii"))

    @classmethod
    def per(
        cls,
        name: str,
        limit: int,
        window: float,
        *,
        burst: int | None = None,
        keys: Sequence[KeyKind] = (KeyKind.IP,),
        failure_mode: FailureMode = FailureMode.FAIL_CLOSED,
        paths: Sequence[str] = (),
        methods: Iterable[str] = (),
    ) -> Policy:
        """``limit`` requests per ``window`` seconds (bursts of ``burst``, default ``limit``)."""
        return cls(
            name=name,
            rate=Rate.per(limit, window, burst=burst),
            keys=tuple(keys),
            failure_mode=failure_mode,
            paths=tuple(paths),
            methods=frozenset(methods),
        )


#: A policy that applies to a request, with the path template that made it apply ("" if none).
Applied = tuple[Policy, str]


def normalize_path(path: str) -> str:
    """Fold ``//`` and a trailing ``/``: ``/auth//login/`` must not dodge the login policy."""
    if "//" in path:
        path = re.sub(r"/{2,}", "/", path)
    if len(path) > 1 and path.endswith("/"):
        path = path.rstrip("/") or "/"
    return path


class _Matcher:
    """One template: plain strings compare equal, templates with parameters use a regex."""

    __slots__ = ("literal", "pattern", "template")

    def __init__(self, template: str) -> None:
        self.template = template
        self.literal = None if "{" in template else template
        self.pattern = compile_path(template)[0] if "{" in template else None

    def matches(self, path: str) -> bool:
        if self.literal is not None:
            return path == self.literal
        return self.pattern is not None and self.pattern.match(path) is not None


class PolicyTable:
    """Picks the policies that apply to a request; all of them must pass."""

    def __init__(self, policies: Iterable[Policy], *, exempt_paths: Sequence[str] = ()) -> None:
        self.policies = tuple(policies)
        names = [p.name for p in self.policies]
        if len(set(names)) != len(names):
            raise ValueError("policy names must be unique")
        self._everywhere = tuple(p for p in self.policies if not p.paths)
        self._routed = tuple(
            (p, tuple(_Matcher(t) for t in p.paths)) for p in self.policies if p.paths
        )
        self._exempt = tuple(_Matcher(t) for t in exempt_paths)
        self._cache: dict[tuple[str, str], tuple[Applied, ...]] = {}

    def __bool__(self) -> bool:
        return bool(self.policies)

    def __getitem__(self, name: str) -> Policy:
        for policy in self.policies:
            if policy.name == name:
                return policy
        raise KeyError(name)

    def match(self, method: str, path: str) -> tuple[Applied, ...]:
        """The policies for ``method path``, routed ones first, in table order."""
        cached = self._cache.get((method, path))
        if cached is not None:
            return cached
        applied = self._match(method, path)
        if len(path) <= MATCH_CACHE_MAX_PATH:
            if len(self._cache) >= MATCH_CACHE_SIZE:
                self._cache.clear()
            self._cache[(method, path)] = applied
        return applied

    def _match(self, method: str, path: str) -> tuple[Applied, ...]:
        path = normalize_path(path)
        if any(m.matches(path) for m in self._exempt):
            return ()
        applied: list[Applied] = []
        for policy, matchers in self._routed:
            if policy.methods and method not in policy.methods:
                continue
            for matcher in matchers:
                if matcher.matches(path):
                    applied.append((policy, matcher.template))
                    break
        applied.extend(
            (policy, "")
            for policy in self._everywhere
            if not policy.methods or method in policy.methods
        )
        return tuple(applied)
