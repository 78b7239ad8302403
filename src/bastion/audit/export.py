"""SIEM export: ECS JSON lines to a rotating file, and RFC 5424 syslog over UDP or TCP.

Both write the document :func:`bastion.audit.ecs.to_ecs` makes, one event per line or message,
so Filebeat, Vector, Fluent Bit or a syslog collector ship it without a custom parser.

Syslog (RFC 5424): ``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID audit - <BOM>{ECS JSON}``, facility
``authpriv`` (10), severity ``notice`` for successes and ``warning`` otherwise. UDP sends one
datagram per event (RFC 5426); TCP frames each message with its length (octet counting,
RFC 6587 §3.4.1) so a message can never be split or joined by a newline inside it. A failed
send raises, so the recorder retries with backoff like any sink.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import logging.handlers
import os
import socket
from collections.abc import Sequence
from datetime import UTC
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bastion.audit.ecs import to_ecs
from bastion.audit.errors import AuditWriteFailed
from bastion.audit.events import AuditEvent, Outcome

__all__ = ["EcsFileSink", "SyslogSink", "format_syslog", "parse_syslog_url"]

#: RFC 5424 §6.2.1: authpriv is for security/authorization messages.
FACILITY_AUTHPRIV = 10
SEVERITY_WARNING = 4
SEVERITY_NOTICE = 5
MSGID = "audit"
#: RFC 5426 §3.2: IPv4 UDP carries at most 65,507 bytes; cut the message rather than lose it.
MAX_UDP_BYTES = 65_507
BOM = "\ufeff"
SYSLOG_SCHEMES = frozenset({"udp", "tcp"})
CONNECT_TIMEOUT_SECONDS = 5.0


class _PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """Creates every file, the rotated-in ones too, mode 0600 (the umask would give 0644)."""

    def _open(self) -> Any:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return os.fdopen(fd, "a", encoding=self.encoding)


def ecs_line(event: AuditEvent) -> str:
    return json.dumps(to_ecs(event), separators=(",", ":"), ensure_ascii=False)


class EcsFileSink:
    """Appends one ECS JSON line per event to ``path``, rotating at ``max_bytes`` and keeping
    ``backups`` old files (``path.1`` ... ``path.N``). The file is created mode 0600: it holds
    the same personal data as the database."""

    def __init__(self, path: Path, *, max_bytes: int, backups: int) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._handler = _PrivateRotatingFileHandler(
            path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
        )
        self._handler.setFormatter(logging.Formatter("%(message)s"))

    def _write_sync(self, lines: list[str]) -> None:
        for line in lines:
            record = logging.LogRecord("bastion.audit", logging.INFO, "", 0, line, None, None)
            self._handler.emit(record)
        self._handler.flush()

    async def write(self, events: Sequence[AuditEvent]) -> None:
        lines = [ecs_line(event) for event in events]
        await asyncio.to_thread(self._write_sync, lines)

    def close(self) -> None:
        self._handler.close()


def parse_syslog_url(url: str) -> tuple[str, str, int]:
    """``(transport, host, port)`` of ``udp://host:port`` or ``tcp://host:port``.

    Raises ValueError for anything else.
    """
    parts = urlsplit(url)
    if parts.scheme not in SYSLOG_SCHEMES or not parts.hostname or parts.port is None:
        raise ValueError("audit_syslog_url must be udp://host:port or tcp://host:port")
    if parts.path not in ("", "/") or parts.query or parts.username:
        raise ValueError("audit_syslog_url must be udp://host:port or tcp://host:port")
    return parts.scheme, parts.hostname, parts.port


def format_syslog(event: AuditEvent, *, app_name: str, hostname: str, procid: str) -> bytes:
    """One RFC 5424 message (no framing) carrying the event's ECS JSON as its MSG."""
    severity = SEVERITY_NOTICE if event.outcome is Outcome.SUCCESS else SEVERITY_WARNING
    pri = FACILITY_AUTHPRIV * 8 + severity
    stamp = event.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    header = f"<{pri}>1 {stamp} {_field(hostname, 255)} {_field(app_name, 48)} "
    header += f"{_field(procid, 128)} {MSGID} -"
    return f"{header} {BOM}{ecs_line(event)}".encode()


def _field(value: str, limit: int) -> str:
    """A header field: printable US-ASCII without spaces (RFC 5424 §6), or the nil value."""
    cleaned = "".join(ch for ch in value if "!" <= ch <= "~")[:limit]
    return cleaned or "-"


class SyslogSink:
    """Sends each event to a syslog collector (see the module docstring)."""

    def __init__(self, url: str, *, app_name: str = "bastion") -> None:
        self.transport, self.host, self.port = parse_syslog_url(url)
        self._app_name = app_name
        self._hostname = socket.gethostname()
        self._procid = str(os.getpid())
        self._writer: asyncio.StreamWriter | None = None
        self._udp: asyncio.DatagramTransport | None = None

    def _messages(self, events: Sequence[AuditEvent]) -> list[bytes]:
        return [
            format_syslog(e, app_name=self._app_name, hostname=self._hostname, procid=self._procid)
            for e in events
        ]

    async def write(self, events: Sequence[AuditEvent]) -> None:
        messages = self._messages(events)
        try:
            if self.transport == "udp":
                await self._send_udp(messages)
            else:
                await self._send_tcp(messages)
        except OSError as exc:
            await self.aclose()
            raise AuditWriteFailed from exc

    async def _send_udp(self, messages: list[bytes]) -> None:
        if self._udp is None:
            loop = asyncio.get_running_loop()
            self._udp, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, remote_addr=(self.host, self.port)
            )
        for message in messages:
            self._udp.sendto(message[:MAX_UDP_BYTES])

    async def _send_tcp(self, messages: list[bytes]) -> None:
        if self._writer is None or self._writer.is_closing():
            async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
                _, self._writer = await asyncio.open_connection(self.host, self.port)
        for message in messages:
            self._writer.write(str(len(message)).encode() + b" " + message)
        async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
            await self._writer.drain()

    async def aclose(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
