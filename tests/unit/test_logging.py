"""bastion.logging: the JSON pipeline, and direct lines byte-identical to it."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from structlog.testing import capture_logs

from bastion import logging as bastion_logging
from bastion.logging import REDACTED, direct_lines, json_text, json_tree, json_value

FIELDS = ("log.logger", "@timestamp", "a.b", "n", "nested")


@pytest.fixture
def buffer() -> Iterator[io.StringIO]:
    out = io.StringIO()
    bastion_logging.configure("info", json=True, stream=out)
    yield out
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()


def _members(fields: dict[str, object]) -> str:
    return ", ".join(f"{json_text(k)}: {json_tree(v)}" for k, v in fields.items())


def test_direct_lines_are_the_pipelines_bytes(buffer: io.StringIO) -> None:
    structlog.contextvars.bind_contextvars(request_id="r-1", api_key="sk-live-123")
    fields: dict[str, object] = {
        "log.logger": "x",
        "@timestamp": "2026-01-01T00:00:00Z",
        "a.b": "ünï\u2028\n",
        "n": 1.5,
        "nested": {"k": [1, None, True]},
    }
    structlog.get_logger("x").info("thing_done", **fields)
    expected = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    direct = direct_lines("thing_done", logging.INFO, FIELDS)
    assert direct is not None
    direct.write([direct.line(_members(fields))] * 2)
    assert buffer.getvalue() == expected * 2
    line = json.loads(expected)
    assert line["api_key"] == REDACTED  # the context is redacted by name, as the chain does
    assert "sk-live-123" not in buffer.getvalue()
    assert (line["level"], line["message"], line["request_id"]) == ("info", "thing_done", "r-1")


@pytest.mark.usefixtures("buffer")
def test_direct_lines_refuse_what_the_chain_would_change() -> None:
    assert direct_lines("e", logging.INFO, FIELDS) is not None
    assert direct_lines("e", logging.DEBUG, FIELDS) is None  # filtered out
    assert direct_lines("e", logging.INFO, ("@timestamp", "password")) is None  # redacted
    assert direct_lines("e", logging.INFO, ("@timestamp", "message")) is None  # renamed
    assert direct_lines("e", logging.INFO, ("a.b",)) is None  # the chain would stamp it
    structlog.contextvars.bind_contextvars(n=1)  # the chain drops a field's namesake
    assert direct_lines("e", logging.INFO, FIELDS) is None


@pytest.mark.usefixtures("buffer")
def test_direct_lines_step_aside_for_other_configurations() -> None:
    with capture_logs():
        assert direct_lines("e", logging.INFO, FIELDS) is None
    assert direct_lines("e", logging.INFO, FIELDS) is not None  # restored
    bastion_logging.configure("info", json=False, stream=io.StringIO())
    assert direct_lines("e", logging.INFO, FIELDS) is None


def test_json_tree_is_json_value() -> None:
    for value in ({"a": [1, 2.5, None, "é"], "b": {"c": True}}, [], "x\ny", 3, float("inf")):
        assert json_tree(value) == json_value(value) == json.dumps(value)


@pytest.mark.usefixtures("buffer")
def test_the_field_names_answer_is_remembered_per_tuple_and_bounded() -> None:
    # The per-batch check looks at a tuple of names once; the answers stay those of the names.
    refused = ("@timestamp", "client_secret")
    for _ in range(2):
        assert direct_lines("e", logging.INFO, FIELDS) is not None
        assert direct_lines("e", logging.INFO, refused) is None
        assert direct_lines("e", logging.INFO, list(refused)) is None  # a list: not remembered
    assert bastion_logging._DIRECT_FIELDS[FIELDS] is True
    assert bastion_logging._DIRECT_FIELDS[refused] is False
    for n in range(2 * bastion_logging._MAX_DIRECT_FIELDS):
        assert direct_lines("e", logging.INFO, ("@timestamp", f"f{n}")) is not None
    assert len(bastion_logging._DIRECT_FIELDS) <= bastion_logging._MAX_DIRECT_FIELDS
    # Remembered or not, a configuration change still applies at once.
    with capture_logs():
        assert direct_lines("e", logging.INFO, FIELDS) is None
