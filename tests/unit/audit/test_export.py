"""SIEM export: ECS JSON lines to a rotating file, RFC 5424 syslog to local UDP and TCP
receivers, and the settings that turn them on."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bastion.audit.errors import AuditWriteFailed
from bastion.audit.events import AuditEvent, EventType, Outcome
from bastion.audit.export import EcsFileSink, SyslogSink, format_syslog, parse_syslog_url
from bastion.audit.services import export_sinks
from bastion.audit.sinks import LogSink
from bastion.config.settings import Settings

T0 = datetime(2026, 5, 4, 3, 2, 1, 123456, tzinfo=UTC)
#: RFC 5424 §6: HEADER SP STRUCTURED-DATA [SP MSG].
SYSLOG = re.compile(
    r"^<(?P<pri>\d{1,3})>1 (?P<ts>\S+) (?P<host>\S+) (?P<app>\S+) (?P<procid>\S+) "
    r"(?P<msgid>\S+) (?P<sd>-|\[.*\]) \ufeff(?P<msg>.*)$",
    re.DOTALL,
)


def event(n: int, outcome: Outcome = Outcome.FAILURE, **fields: object) -> AuditEvent:
    values: dict[str, object] = {
        "type": EventType.IDENTITY_LOGIN_FAILED,
        "outcome": outcome,
        "time": T0,
        "subject": f"user:{n}",
        "client_ip": "192.0.2.1",
        "reason": "wrong_password",
        "details": {"n": n, "note": "line\nbreak é"},
    }
    values.update(fields)
    return AuditEvent(**values)  # type: ignore[arg-type]


async def test_file_sink_writes_one_ecs_line_per_event_and_rotates(tmp_path: Path) -> None:
    path = tmp_path / "siem" / "audit.jsonl"
    sink = EcsFileSink(path, max_bytes=2000, backups=3)
    try:
        for n in range(40):
            await sink.write([event(n)])
    finally:
        sink.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    rotated = sorted(p.name for p in path.parent.iterdir())
    assert rotated == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2", "audit.jsonl.3"]
    lines = path.read_text(encoding="utf-8").splitlines()
    documents = [json.loads(line) for line in lines]
    assert documents
    assert all(d["event.action"] == "identity:login:failed" for d in documents)
    assert documents[-1]["user.target.id"] == "39"
    assert documents[-1]["bastion.details"]["note"] == "line\nbreak é"
    assert documents[-1]["@timestamp"] == "2026-05-04T03:02:01.123456Z"


def test_syslog_message_follows_rfc_5424() -> None:
    message = format_syslog(
        event(1), app_name="bastion", hostname="host name\x00é", procid="42"
    ).decode()
    match = SYSLOG.match(message)
    assert match, message
    assert int(match["pri"]) == 10 * 8 + 4  # authpriv.warning for a failure
    assert match["ts"] == "2026-05-04T03:02:01.123456Z"
    assert match["host"] == "hostname"  # printable ASCII only, no spaces
    assert (match["app"], match["procid"], match["msgid"], match["sd"]) == (
        "bastion",
        "42",
        "audit",
        "-",
    )
    assert json.loads(match["msg"])["event.outcome"] == "failure"
    success = format_syslog(event(1, Outcome.SUCCESS), app_name="", hostname="", procid="1")
    success_match = SYSLOG.match(success.decode())
    assert success_match
    assert int(success_match["pri"]) == 10 * 8 + 5
    assert success_match["host"] == success_match["app"] == "-"  # the nil value


async def test_syslog_over_udp_reaches_a_local_receiver() -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    port = receiver.getsockname()[1]
    sink = SyslogSink(f"udp://127.0.0.1:{port}", app_name="bastion-test")
    try:
        await sink.write([event(1), event(2)])
        datagrams = [receiver.recv(65535).decode() for _ in range(2)]
    finally:
        await sink.aclose()
        receiver.close()
    parsed = [SYSLOG.match(d) for d in datagrams]
    assert all(parsed)
    assert [json.loads(m["msg"])["user.target.id"] for m in parsed if m] == ["1", "2"]
    assert all(m["app"] == "bastion-test" for m in parsed if m)


async def test_syslog_over_tcp_uses_octet_counting() -> None:
    received = bytearray()
    done = asyncio.Event()
    finished = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while chunk := await reader.read(65536):
            received.extend(chunk)
            if received.count(b"\xef\xbb\xbf") >= 2:
                done.set()
        writer.close()
        await writer.wait_closed()
        finished.set()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sink = SyslogSink(f"tcp://127.0.0.1:{port}")
    try:
        await sink.write([event(1), event(2, details={"x": "a\nb"})])
        await asyncio.wait_for(done.wait(), timeout=5)
    finally:
        await sink.aclose()
        await asyncio.wait_for(finished.wait(), timeout=5)
        server.close()
        await server.wait_closed()
    messages = []
    data = bytes(received)
    while data:
        length, _, rest = data.partition(b" ")
        messages.append(rest[: int(length)].decode())
        data = rest[int(length) :]
    assert len(messages) == 2
    assert all(SYSLOG.match(m) for m in messages)


async def test_syslog_failure_raises_so_the_recorder_retries() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now
    sink = SyslogSink(f"tcp://127.0.0.1:{port}")
    with pytest.raises(AuditWriteFailed):
        await sink.write([event(1)])


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:514", "udp://127.0.0.1", "tcp://:514", "udp://u@h:514", "udp://h:514/x", ""],
)
def test_bad_syslog_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="audit_syslog_url"):
        parse_syslog_url(url)


def test_settings_choose_the_export_sinks(tmp_path: Path) -> None:
    base = {"env": "test", "data_dir": tmp_path, "secret_key": "s" * 48}
    assert [type(s) for s in export_sinks(Settings(**base))] == [LogSink]
    sinks = export_sinks(
        Settings(
            **base,
            audit_log_sink=False,
            audit_export_file=tmp_path / "audit.jsonl",
            audit_syslog_url="udp://127.0.0.1:5514",
        )
    )
    assert [type(s) for s in sinks] == [EcsFileSink, SyslogSink]
    for sink in sinks:
        if isinstance(sink, EcsFileSink):
            sink.close()
