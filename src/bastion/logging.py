"""Structured JSON logs (structlog), one line per event on stdout.

Secret values never reach these logs: settings secrets are :class:`pydantic.SecretStr`, and the
processor :func:`_redact` blanks any field whose name says it holds a credential, as a second line
of defence for details a caller passes by mistake.

:func:`direct_lines` is the way around the processor chain for a caller that writes many lines
with the same fixed, non-sensitive field names (the audit trail's ECS lines): it writes exactly
the bytes the chain would, with the context variables, the level and the redaction the chain
adds, and falls back (returns None) whenever it cannot promise that.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import re
import sys
from collections.abc import Collection, MutableMapping, Sequence
from json.encoder import encode_basestring_ascii
from typing import Any, TextIO

import structlog

#: Field names that denote credentials: their values are never logged nor stored in audit rows.
SENSITIVE_KEY = re.compile(
    r"pass(word|wd|phrase)?|secret|token|authori[sz]ation|cookie|api[_-]?key|credential|otp",
    re.IGNORECASE,
)
REDACTED = "[redacted]"


def _timestamp(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Add ``@timestamp`` unless the caller set one (audit lines carry the event's own time)."""
    if "@timestamp" not in event_dict:
        event_dict["@timestamp"] = _STAMPER(None, "", {})["@timestamp"]
    return event_dict


_STAMPER = structlog.processors.TimeStamper(fmt="iso", utc=True, key="@timestamp")


@functools.lru_cache(maxsize=4096)
def _is_sensitive_key(key: str) -> bool:
    # Field names repeat on every line (an audit line has ~18): the regex runs once per name.
    # Bounded, so a stream of made-up names cannot grow it without limit.
    return key not in ("event", "message") and SENSITIVE_KEY.search(key) is not None


def _redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if isinstance(key, str) and _is_sensitive_key(key):
            event_dict[key] = REDACTED
    return event_dict


def configure(level: str = "info", *, json: bool = True, stream: TextIO | None = None) -> None:
    """Configure structlog and the standard library root logger once, at startup.

    ``stream`` defaults to stdout (tests pass a buffer to inspect every line written).
    """
    out = stream or sys.stdout
    numeric = logging.getLevelName(level.upper())
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _timestamp,
        _redact,
    ]
    final: list[Any] = [
        # "event" would clash with ECS's event.* fields in Elasticsearch: call it "message".
        structlog.processors.EventRenamer("message"),
        structlog.processors.format_exc_info,
    ]
    processors = [*shared, *final, renderer]
    wrapper = structlog.make_filtering_bound_logger(numeric)
    factory = structlog.PrintLoggerFactory(out)
    structlog.configure(
        processors=processors,
        wrapper_class=wrapper,
        logger_factory=factory,
        cache_logger_on_first_use=False,
    )
    global _PIPELINE  # noqa: PLW0603 - what direct_lines() compares the live configuration to
    _PIPELINE = None
    if json:
        _PIPELINE = _Pipeline(processors, tuple(processors), wrapper, factory, numeric)
    # Standard-library loggers (uvicorn, alembic, libraries) go through the same processors, so
    # every line on stdout is one JSON object with the same redaction.
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *final,
                renderer,
            ],
        )
    )
    logging.basicConfig(level=numeric, handlers=[handler], force=True)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "alembic"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger


# -- lines around the processor chain ------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _Pipeline:
    """The JSON configuration :func:`configure` installed (compared by identity)."""

    processors: list[Any]
    #: Its contents too: ``structlog.testing.capture_logs`` swaps them in the same list.
    chain: tuple[Any, ...]
    wrapper: Any
    factory: Any
    level: int


_PIPELINE: _Pipeline | None = None
#: Names the chain writes or reads itself: a caller's field of that name would be changed.
_CHAIN_FIELDS = frozenset({"event", "level", "message", "exc_info", "exception"})


def _json_fallback(value: Any) -> Any:
    # What structlog's JSONRenderer does with a value JSON cannot hold.
    try:
        return value.__structlog__()
    except AttributeError:
        return repr(value)


_ENCODER = json.JSONEncoder(default=_json_fallback)
#: A value as the configured JSON renderer writes it (``json.dumps`` defaults: ``", "`` and
#: ``": "`` separators, ASCII only).
json_value = _ENCODER.encode
#: A text value as :data:`json_value` writes it, without its type dispatch.
json_text = encode_basestring_ascii
#: ``json.dumps`` builds a C encoder per call; this one is built once. Without the cycle check
#: (``markers=None``): only for trees, such as scrubbed audit details (fresh and depth-bounded).
_MAKE_ENCODER: Any = getattr(json.encoder, "c_make_encoder", None)
_TREE_ENCODER: Any = (
    None
    if _MAKE_ENCODER is None
    else _MAKE_ENCODER(
        None, _json_fallback, encode_basestring_ascii, None, ": ", ", ", False, False, True
    )
)


def json_tree(value: Any) -> str:
    """:data:`json_value` for a value without cycles (lists, dicts, scalars), faster."""
    if _TREE_ENCODER is None:  # pragma: no cover - CPython always has the C encoder
        return json_value(value)
    return "".join(_TREE_ENCODER(value, 0))


class DirectLines:
    """Writes final JSON lines for one event name and level, around the processor chain.

    Made by :func:`direct_lines`, for one batch: a reconfiguration applies from the next one.
    ``line(members)`` wraps the caller's members (``"name": value, ...`` as :data:`json_value`
    writes them, with ``@timestamp`` among them) into exactly the line the chain would write for
    ``logger.<level>(event, **fields)``: the bound context variables (redacted by name), the
    level and the message after the caller's fields. ``write`` hands the lines to the
    configured output in one call (one flush), under its lock.
    """

    __slots__ = ("_logger", "_tail")

    def __init__(self, logger: Any, tail: str) -> None:
        self._logger = logger
        self._tail = tail

    def line(self, members: str) -> str:
        return "{" + members + self._tail

    def write(self, lines: Sequence[str]) -> None:
        if lines:
            self._logger.msg("\n".join(lines))


#: Field-name tuples :func:`direct_lines` looked at, and whether each can be written directly:
#: the answer depends on the names alone (the same tuple every batch). Bounded.
_DIRECT_FIELDS: dict[tuple[str, ...], bool] = {}
_MAX_DIRECT_FIELDS = 64


def _fields_direct(fields: Collection[str]) -> bool:
    """Whether lines with ``fields`` can bypass the chain: ``@timestamp`` among them, none
    redacted or changed by the chain (remembered for tuples of names)."""
    known = _DIRECT_FIELDS.get(fields) if type(fields) is tuple else None
    if known is not None:
        return known
    direct = "@timestamp" in fields and not any(
        name in _CHAIN_FIELDS or _is_sensitive_key(name) for name in fields
    )
    if type(fields) is tuple and len(_DIRECT_FIELDS) < _MAX_DIRECT_FIELDS:
        _DIRECT_FIELDS[fields] = direct
    return direct


def direct_lines(event: str, level: int, fields: Collection[str]) -> DirectLines | None:
    """A :class:`DirectLines` for ``event`` at ``level`` whose lines carry only ``fields``.

    None when the lines must go through structlog: the live configuration is not the JSON one
    :func:`configure` installed (tests capturing logs, a console renderer), ``level`` is filtered
    out, a field name would be redacted or changed by the chain, ``@timestamp`` is not among the
    fields, or a bound context variable has the name of a field (the chain would drop it).
    """
    pipeline = _PIPELINE
    config = structlog.get_config()
    if (
        pipeline is None
        or config["processors"] is not pipeline.processors
        or tuple(pipeline.processors) != pipeline.chain
        or config["wrapper_class"] is not pipeline.wrapper
        or config["logger_factory"] is not pipeline.factory
        or level < pipeline.level
        or not _fields_direct(fields)
    ):
        return None
    logger = pipeline.factory()
    if type(logger) not in (structlog.PrintLogger, structlog.WriteLogger):
        return None
    context = structlog.contextvars.get_contextvars()
    if any(name in fields or name in _CHAIN_FIELDS for name in context):
        return None
    members = "".join(
        f", {json_text(name)}: {json_value(REDACTED if _is_sensitive_key(name) else value)}"
        for name, value in context.items()
    )
    method = logging.getLevelName(level).lower()
    tail = f'{members}, "level": {json_text(method)}, "message": {json_text(event)}}}'
    return DirectLines(logger, tail)
