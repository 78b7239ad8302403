"""Structured JSON logs (structlog), one line per event on stdout.

Secret values never reach these logs: settings secrets are :class:`pydantic.SecretStr`, and the
processor :func:`_redact` blanks any field whose name says it holds a credential, as a second line
of defence for details a caller passes by mistake.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import MutableMapping
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
    structlog.configure(
        processors=[*shared, *final, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
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
