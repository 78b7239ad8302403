"""Condition parameter types and OpenFGA's rules for converting JSON context values to them.

A parameter type is written ``int`` or ``map<list<string>>`` in the DSL and
``{"type_name": "TYPE_NAME_MAP", "generic_types": [...]}`` in a model's JSON. Context values
arrive as decoded JSON (tuple context, request context); :meth:`ParameterType.convert` applies
OpenFGA's conversions and raises :class:`ConversionFailed` for anything it would refuse:

- ``timestamp``: an RFC 3339 string only (``2024-01-31T12:00:00Z``, offset or ``Z`` required);
- ``duration``: a Go duration string only (``10m``, ``1h30m``, ``1.5h``, ``300ms``; no ``d``),
  kept to microsecond precision;
- ``int`` / ``uint`` / ``double``: a JSON number or a numeric string; int and uint must be whole
  and within 64 bits, uint non-negative; a JSON boolean is not a number;
- ``bool`` and ``string``: the JSON type itself, no coercion;
- ``list<T>`` / ``map<T>`` (string keys): converted element by element;
- ``ipaddress``: a string parsed as an IPv4 or IPv6 address;
- ``bytes`` (a Bastion extension, OpenFGA has no such type): a base64 string;
- ``any``: the JSON value unchanged.

In-process callers may also pass a timezone-aware :class:`datetime.datetime`, a
:class:`datetime.timedelta` or :class:`bytes` where those types are expected.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import ipaddress
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from fractions import Fraction
from typing import Any


class ConversionFailed(ValueError):
    """A context value cannot be converted to its declared parameter type."""


class TypeName(StrEnum):
    """The parameter type names, valued by their DSL keyword."""

    ANY = "any"
    BOOL = "bool"
    STRING = "string"
    INT = "int"
    UINT = "uint"
    DOUBLE = "double"
    BYTES = "bytes"
    DURATION = "duration"
    TIMESTAMP = "timestamp"
    IPADDRESS = "ipaddress"
    LIST = "list"
    MAP = "map"

    @property
    def json_name(self) -> str:
        return f"TYPE_NAME_{self.name}"

    @property
    def is_generic(self) -> bool:
        return self in (TypeName.LIST, TypeName.MAP)


#: ``list<map<...>>`` may nest this deep (OpenFGA's DSL allows one level; JSON allows more).
MAX_GENERIC_DEPTH = 8

_BY_JSON = {name.json_name: name for name in TypeName}
_BY_DSL = {name.value: name for name in TypeName}
_DSL_TYPE = re.compile(r"\s*([a-z]+)\s*(?:<(.*)>)?\s*\Z", re.DOTALL)

_INT64 = (-(2**63), 2**63 - 1)
_UINT64 = (0, 2**64 - 1)
_NUMERIC = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\Z")
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})\Z",
)
_DURATION_PART = re.compile(r"(\d*)(?:\.(\d*))?(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_NANOS_PER_UNIT = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,
    "\u03bcs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_MAX_DURATION_NANOS = 2**63 - 1  # Go's time.Duration is an int64 of nanoseconds


@dataclass(frozen=True, slots=True)
class ParameterType:
    """A declared condition parameter type; ``generic`` is the element type of list and map."""

    name: TypeName
    generic: ParameterType | None = None

    @classmethod
    def from_json(cls, value: Mapping[str, Any], *, _depth: int = 0) -> ParameterType:
        """Read ``{"type_name": ..., "generic_types": [...]}``; raises ValueError."""
        if _depth > MAX_GENERIC_DEPTH:
            raise ValueError(f"parameter types nest deeper than {MAX_GENERIC_DEPTH} levels")
        if not isinstance(value, Mapping):
            raise ValueError("a parameter type must be an object")  # noqa: TRY004 - one error kind for every malformed type
        name = _BY_JSON.get(value.get("type_name", ""))
        if name is None:
            raise ValueError(f"unknown parameter type {value.get('type_name')!r}")
        generics = value.get("generic_types") or []
        if not isinstance(generics, list):
            raise ValueError("generic_types must be a list")  # noqa: TRY004 - as above
        if name.is_generic:
            if len(generics) != 1:
                raise ValueError(f"{name.value} requires exactly one generic type")
            return cls(name, cls.from_json(generics[0], _depth=_depth + 1))
        if generics:
            raise ValueError(f"{name.value} takes no generic type")
        return cls(name)

    @classmethod
    def from_dsl(cls, text: str, *, _depth: int = 0) -> ParameterType:
        """Read ``int`` or ``map<list<string>>``; raises ValueError."""
        if _depth > MAX_GENERIC_DEPTH:
            raise ValueError(f"parameter types nest deeper than {MAX_GENERIC_DEPTH} levels")
        match = _DSL_TYPE.match(text)
        if match is None or match.group(1) not in _BY_DSL:
            raise ValueError(f"unknown parameter type {text.strip()!r}")
        name = _BY_DSL[match.group(1)]
        inner = match.group(2)
        if name.is_generic:
            if inner is None:
                raise ValueError(f"{name.value} requires a generic type: {name.value}<T>")
            return cls(name, cls.from_dsl(inner, _depth=_depth + 1))
        if inner is not None:
            raise ValueError(f"{name.value} takes no generic type")
        return cls(name)

    def to_json(self) -> dict[str, Any]:
        result: dict[str, Any] = {"type_name": self.name.json_name}
        if self.generic is not None:
            result["generic_types"] = [self.generic.to_json()]
        return result

    def to_dsl(self) -> str:
        if self.generic is None:
            return self.name.value
        return f"{self.name.value}<{self.generic.to_dsl()}>"

    def contains(self, name: TypeName) -> bool:
        return self.name is name or (self.generic is not None and self.generic.contains(name))

    def convert(self, value: Any) -> Any:
        """The value as the CEL library expects it; raises :class:`ConversionFailed`."""
        return _CONVERTERS[self.name](self, value)


def count_items(value: Any) -> int:
    """How many list elements and map entries ``value`` holds, counted recursively."""
    if isinstance(value, Mapping):
        return len(value) + sum(count_items(item) for item in value.values())
    if isinstance(value, list | tuple):
        return len(value) + sum(count_items(item) for item in value)
    return 0


def _fail(kind: str, value: Any) -> ConversionFailed:
    return ConversionFailed(f"expected {kind}, got {type(value).__name__}")


def _as_bool(_: ParameterType, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail("a boolean", value)
    return value


def _as_string(_: ParameterType, value: Any) -> str:
    if not isinstance(value, str):
        raise _fail("a string", value)
    return value


def _exact_number(value: Any) -> Fraction:
    """A JSON number or numeric string as an exact Fraction (NaN and infinities refused)."""
    if isinstance(value, bool):
        raise _fail("a number", value)
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConversionFailed("expected a finite number")
        return Fraction(value)
    if isinstance(value, str) and _NUMERIC.match(value):
        try:
            return Fraction(Decimal(value))
        except (InvalidOperation, ValueError) as error:
            raise ConversionFailed("expected a number") from error
    raise _fail("a number", value)


def _as_integer(kind: str, bounds: tuple[int, int], value: Any) -> int:
    if type(value) is int:  # the common case, without the exact-number detour
        result = value
    else:
        number = _exact_number(value)
        if number.denominator != 1:
            raise ConversionFailed(f"expected a whole number for {kind}")
        result = int(number)
    if not bounds[0] <= result <= bounds[1]:
        raise ConversionFailed(f"the number is out of range for {kind}")
    return result


def _as_int(_: ParameterType, value: Any) -> int:
    return _as_integer("int", _INT64, value)


def _as_uint(_: ParameterType, value: Any) -> int:
    return _as_integer("uint", _UINT64, value)


def _as_double(_: ParameterType, value: Any) -> float:
    if type(value) is float and math.isfinite(value):
        return value
    if type(value) is int:
        return float(value)
    return float(_exact_number(value))


def _as_bytes(_: ParameterType, value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise _fail("a base64 string", value)
    try:
        if "-" in value or "_" in value:
            return base64.urlsafe_b64decode(value)
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ConversionFailed("expected a base64 string") from error


def _as_timestamp(_: ParameterType, value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ConversionFailed("a timestamp needs a time zone")
        return value.astimezone(dt.UTC)
    if not isinstance(value, str) or _RFC3339.match(value) is None:
        raise ConversionFailed("expected an RFC 3339 timestamp string")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError as error:
        raise ConversionFailed("expected an RFC 3339 timestamp string") from error
    return parsed.astimezone(dt.UTC)


def parse_go_duration(text: str) -> dt.timedelta:
    """Parse a Go duration string (``1h30m``, ``-1.5s``, ``300ms``); raises ConversionFailed."""
    rest = text[1:] if text[:1] in "+-" else text
    if rest == "0":
        return dt.timedelta(0)
    if not rest:
        raise ConversionFailed("expected a duration string such as 10m or 1h30m")
    nanos = Fraction(0)
    position = 0
    while position < len(rest):
        part = _DURATION_PART.match(rest, position)
        if part is None or not (part.group(1) or part.group(2)):
            raise ConversionFailed("expected a duration string such as 10m or 1h30m")
        whole, fraction, unit = part.group(1) or "0", part.group(2) or "", part.group(3)
        number = Fraction(int(whole)) + (
            Fraction(int(fraction), 10 ** len(fraction)) if fraction else 0
        )
        nanos += number * _NANOS_PER_UNIT[unit]
        position = part.end()
    if nanos > _MAX_DURATION_NANOS:
        raise ConversionFailed("the duration is out of range")
    micros = int(nanos / 1000)  # timedelta's resolution is the microsecond
    return dt.timedelta(microseconds=-micros if text.startswith("-") else micros)


def _as_duration(_: ParameterType, value: Any) -> dt.timedelta:
    if isinstance(value, dt.timedelta):
        return value
    if not isinstance(value, str):
        raise ConversionFailed("expected a duration string such as 10m or 1h30m")
    return parse_go_duration(value)


def canonical_ip(value: str) -> str:
    """The canonical text of an IP address; raises ConversionFailed."""
    try:
        return ipaddress.ip_address(value).compressed
    except ValueError as error:
        raise ConversionFailed("expected an IP address") from error


def _as_ipaddress(_: ParameterType, value: Any) -> str:
    if not isinstance(value, str):
        raise _fail("an IP address string", value)
    return canonical_ip(value)


def _element_type(kind: ParameterType) -> ParameterType:
    if kind.generic is None:  # only a hand-built ParameterType(LIST) can get here
        raise ConversionFailed(f"{kind.name.value} has no element type")
    return kind.generic


def _as_list(kind: ParameterType, value: Any) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise _fail("a list", value)
    element = _element_type(kind)
    return [element.convert(item) for item in value]


def _as_map(kind: ParameterType, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail("a map", value)
    element = _element_type(kind)
    result: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise ConversionFailed("map keys must be strings")
        result[key] = element.convert(item)
    return result


def _as_any(_: ParameterType, value: Any) -> Any:
    return value


_CONVERTERS = {
    TypeName.ANY: _as_any,
    TypeName.BOOL: _as_bool,
    TypeName.STRING: _as_string,
    TypeName.INT: _as_int,
    TypeName.UINT: _as_uint,
    TypeName.DOUBLE: _as_double,
    TypeName.BYTES: _as_bytes,
    TypeName.DURATION: _as_duration,
    TypeName.TIMESTAMP: _as_timestamp,
    TypeName.IPADDRESS: _as_ipaddress,
    TypeName.LIST: _as_list,
    TypeName.MAP: _as_map,
}
