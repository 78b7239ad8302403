"""Audit details made safe to keep: a scrubbed, bounded, read-only deep copy.

Every event's ``details`` pass through :func:`scrub` before anything keeps a reference to the
caller's values (``record()`` and :func:`~bastion.audit.context.event_from_scope`): keys that
name a credential are redacted, text is cleaned and cut, nesting is bounded, and the copy is a
:class:`ScrubbedDetails` that refuses changes. Split out of :mod:`bastion.audit.recorder`
(which re-exports these names) to keep each module small.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Mapping
from typing import Any, NoReturn

from bastion.audit.events import AuditEvent
from bastion.logging import REDACTED, SENSITIVE_KEY

#: Bounds on details, so attacker-influenced values cannot bloat the trail.
MAX_DETAIL_DEPTH = 8
MAX_DETAIL_STRING_CHARS = 1024
TRUNCATED = "[truncated]"

# Detail keys that name a credential (SENSITIVE_KEY) are redacted. Callers must not put secrets
# in details; this is the second line of defence, so a mistake does not write a password into
# the permanent trail.


def clean_text(text: str) -> str:
    """``text`` as every database accepts it: valid UTF-8 without NUL characters.

    PostgreSQL refuses NUL in text and JSON, and no driver can encode a lone surrogate (which
    ``json.loads`` happily produces from ``"\\ud800"``). One such attacker-supplied string would
    fail its whole batch on every retry: a way to erase other events from the trail.
    """
    if text.isascii() and "\x00" not in text:
        return text
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")


class ScrubbedDetails(dict[str, Any]):
    """Event details as :func:`scrub` leaves them: JSON-safe, redacted, bounded, and read-only
    (integral floats are integers, as in the chain's canonical form).

    A fresh copy nobody else holds (the caller's mapping is never kept), so what the caller does
    with its own dict after ``record()`` cannot change the event. Sinks that see this type skip
    scrubbing again (one scrub per event, on the request path). Nested values are fresh copies
    too (plain dicts and lists: what JSON reads back); the top level refuses every change.
    """

    __slots__ = ()

    def _read_only(self, *_args: Any, **_kwargs: Any) -> NoReturn:
        raise TypeError("audit event details are read-only")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _read_only
    __ior__ = _read_only

    def __reduce__(self) -> tuple[type[ScrubbedDetails], tuple[dict[str, Any]]]:
        # copy, deepcopy and pickle rebuild through the constructor, never item assignment.
        return (ScrubbedDetails, (dict(self),))


def scrub(value: Any, depth: int = 0) -> Any:
    """A JSON-safe copy of ``value`` with sensitive keys redacted and sizes bounded.

    A mapping at the top level comes back as :class:`ScrubbedDetails` (an already scrubbed one
    is returned as is: it is read-only and was made by this function).
    """
    kind = type(value)
    if kind is ScrubbedDetails:
        return value
    if depth == 0 and (kind is dict or isinstance(value, Mapping)):  # dict: no ABC check
        return ScrubbedDetails(_scrub_mapping(value, 0))
    return _scrub(value, kind, depth)


def _scrub(value: Any, kind: type, depth: int) -> Any:  # noqa: PLR0911 - one case per kind
    # The common leaves first: this runs for every detail of every event on the request path.
    if kind is str:
        return _bounded(value)
    if kind is int or kind is bool or value is None:
        return value
    if kind is list and depth < MAX_DETAIL_DEPTH:  # before the (slower) abstract type checks
        return [_scrub(v, type(v), depth + 1) for v in value]
    if isinstance(value, Mapping | list | tuple | set | frozenset) and depth >= MAX_DETAIL_DEPTH:
        return TRUNCATED
    if isinstance(value, Mapping):
        return _scrub_mapping(value, depth)
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(v, type(v), depth + 1) for v in value]
    if isinstance(value, bool | int):
        return value
    if _is_finite_float(value):
        # Integral floats as integers, as the chain's canonical form writes them (PostgreSQL's
        # JSONB reads 1e16 back as an integer): the snapshot is already in that form.
        return int(value) if value.is_integer() else value
    # Strings are cut to size; anything else (datetimes, UUIDs, NaN, objects) becomes text: a
    # value the JSON column cannot store would fail the whole batch on every retry.
    return _bounded(str(value))


def scrub_mapping(value: Mapping[Any, Any], depth: int = 0) -> dict[str, Any]:
    """The scrubbed copy of a mapping's members (as :func:`scrub` makes it, at ``depth``)."""
    out: dict[str, Any] = {}
    # Runs for every event on the request path: the common members (short plain text, integers,
    # None, lists of those) without a call each; the result is that of _scrub's cases.
    inner = depth + 1
    for key, member in value.items():
        name = key if type(key) is str else str(key)
        known = _KEYS.get(name)
        if known is None:
            known = _key(name)
        bounded, sensitive = known
        if sensitive:
            out[bounded] = REDACTED
            continue
        kind = type(member)
        if kind is str:
            common = len(member) <= MAX_DETAIL_STRING_CHARS and member.isascii()
            out[bounded] = member if common and "\x00" not in member else _bounded(member)
        elif kind is int or kind is bool or member is None:
            out[bounded] = member
        elif kind is list and inner < MAX_DETAIL_DEPTH:
            items = []
            for item in member:
                if (
                    type(item) is str
                    and len(item) <= MAX_DETAIL_STRING_CHARS
                    and item.isascii()
                    and "\x00" not in item
                ):
                    items.append(item)
                else:
                    items.append(_scrub(item, type(item), inner + 1))
            out[bounded] = items
        else:
            out[bounded] = _scrub(member, kind, inner)
    return out


_scrub_mapping = scrub_mapping

#: Detail keys already looked at: each one's bounded form (see _bounded) and whether it names a
#: credential (the same few keys recur in every event). Bounded, so attacker-chosen keys cannot
#: grow it.
_KEYS: dict[str, tuple[str, bool]] = {}
_MAX_KEYS = 4096


def _key(name: str) -> tuple[str, bool]:
    """``name``'s bounded form and whether it names a credential (remembered in _KEYS)."""
    known = (_bounded(name), SENSITIVE_KEY.search(name) is not None)
    if len(_KEYS) < _MAX_KEYS:
        _KEYS[name] = known
    return known


def _is_finite_float(value: Any) -> bool:
    return isinstance(value, float) and math.isfinite(value)


def _bounded(text: str) -> str:
    if len(text) <= MAX_DETAIL_STRING_CHARS and text.isascii() and "\x00" not in text:
        return text  # the common case, without a call
    if len(text) > MAX_DETAIL_STRING_CHARS:
        text = text[:MAX_DETAIL_STRING_CHARS] + TRUNCATED
    return clean_text(text)


_FIELDS = tuple(f.name for f in dataclasses.fields(AuditEvent))
_OTHER_FIELDS = operator.attrgetter(*_FIELDS[:-1])


def with_details(event: AuditEvent, details: Mapping[str, Any]) -> AuditEvent:
    """``event`` with other ``details`` (``dataclasses.replace``, without its per-call cost)."""
    if _FIELDS[-1] != "details":  # pragma: no cover - a field was added after ``details``
        return dataclasses.replace(event, details=details)
    return AuditEvent(*_OTHER_FIELDS(event), details)  # type: ignore[call-arg]
