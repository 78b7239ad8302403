"""Strict parsing of outbound URLs: one reading of the URL, shared by the check and the request.

SSRF filters are usually beaten by a URL that the filter and the HTTP library read differently:
``http://127.1/``, ``http://0x7f000001/``, ``http://2130706433/`` and ``http://0177.0.0.1/`` are
all loopback to a WHATWG or ``inet_aton`` parser; ``https://good.example@evil.example/`` and
``https://evil.example\\@good.example/`` put the real host on different sides of the ``@``;
fullwidth digits (U+FF11...) become ASCII under IDNA mapping; ``%`` hides a host or an
IPv6 zone id. Rather than guess how each consumer normalises such forms, :func:`parse_target`
refuses every one of them:

- only printable ASCII (IDN hosts are given in their ``xn--`` form), no backslash;
- an allowed scheme (``https``; ``http`` only with ``allow_http``) and an allowed port;
- no userinfo (``@``) and no ``%`` anywhere in the authority, no trailing dot;
- a host whose last label looks numeric must be a canonical dotted quad (four decimal parts,
  no leading zeros); an IPv6 literal must parse without a zone id;
- host names are LDH labels (letters, digits, hyphen), lower-cased, at most 253 characters.

Finally httpx parses the same text and must agree on scheme, host and port.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Final

from bastion.outbound.addresses import IPAddress
from bastion.outbound.errors import DestinationRefused

MAX_URL_CHARS: Final = 2048
MAX_HOST_CHARS: Final = 253
DEFAULT_PORTS: Final = {"https": 443, "http": 80}

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_DOTTED_QUAD = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
_NUMERIC_LABEL = re.compile(r"(?:[0-9]+|0[xX][0-9a-fA-F]*)")
_PORT = re.compile(r"[1-9][0-9]{0,4}")


@dataclass(frozen=True, slots=True)
class Target:
    """A vetted URL: ``host`` is a lower-case name or an IP literal (``ip`` set, unbracketed)."""

    url: str
    scheme: str
    host: str
    port: int
    ip: IPAddress | None = None


def _refuse(reason: str) -> DestinationRefused:
    return DestinationRefused(reason, "The URL is not an allowed outbound destination.")


def parse_target(url: str, *, schemes: frozenset[str], ports: frozenset[int]) -> Target:
    """Parse ``url`` strictly. Raises :class:`DestinationRefused` (with the reason)."""
    if not isinstance(url, str) or len(url) > MAX_URL_CHARS:
        raise _refuse("too_long")
    if not url.isascii() or not url.isprintable() or " " in url:
        raise _refuse("non_ascii_or_control")
    if "\\" in url:
        raise _refuse("backslash")
    match = _SCHEME.match(url)
    if match is None:
        raise _refuse("no_scheme")
    scheme = match.group(1).lower()
    if scheme not in schemes:
        raise _refuse("scheme")
    rest = url[match.end() :]
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" in authority:
        raise _refuse("userinfo")
    if "%" in authority:
        raise _refuse("percent_in_host")
    host_text, port = _split_port(authority, scheme)
    if port not in ports:
        raise _refuse("port")
    host, ip = _host(host_text)
    _same_reading(url, scheme, host, ip, port)
    return Target(url=url, scheme=scheme, host=host, port=port, ip=ip)


def _split_port(authority: str, scheme: str) -> tuple[str, int]:
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise _refuse("bad_ipv6_literal")
        host, tail = authority[: end + 1], authority[end + 1 :]
        if tail and not tail.startswith(":"):
            raise _refuse("bad_authority")
        port_text = tail[1:] if tail else None
    elif ":" in authority:
        host, port_text = authority.rsplit(":", 1)
    else:
        host, port_text = authority, None
    if port_text is None:
        return host, DEFAULT_PORTS[scheme]
    if not _PORT.fullmatch(port_text) or int(port_text) > 65535:
        raise _refuse("bad_port")
    return host, int(port_text)


def _host(text: str) -> tuple[str, IPAddress | None]:
    if not text:
        raise _refuse("empty_host")
    if text.startswith("["):
        try:
            v6 = ipaddress.IPv6Address(text[1:-1])
        except ValueError:
            raise _refuse("bad_ipv6_literal") from None
        return str(v6), v6
    if text.endswith("."):
        raise _refuse("trailing_dot")
    host = text.lower()
    labels = host.split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        # A WHATWG parser reads any host ending in a number as IPv4, in decimal, octal or hex,
        # with 1 to 4 parts: only the canonical dotted quad is unambiguous.
        if not _DOTTED_QUAD.fullmatch(host):
            raise _refuse("ambiguous_ipv4")
        v4 = ipaddress.IPv4Address(host)
        return str(v4), v4
    if len(host) > MAX_HOST_CHARS or not all(_LABEL.fullmatch(label) for label in labels):
        raise _refuse("bad_hostname")
    return host, None


def _same_reading(url: str, scheme: str, host: str, ip: IPAddress | None, port: int) -> None:
    """httpx, which sends the request, must read the URL exactly as we did."""
    import httpx  # noqa: PLC0415 - ~6 MiB, for the first outbound URL only (see services)

    try:
        parsed = httpx.URL(url)
        raw = parsed.raw_host.decode("ascii")  # .host would be the IDNA-decoded Unicode form
        same_host = ipaddress.ip_address(raw) == ip if ip else raw == host
    except (httpx.InvalidURL, ValueError):  # UnicodeDecodeError is a ValueError
        raise _refuse("unparseable") from None
    if (
        parsed.scheme != scheme
        or not same_host
        or (parsed.port or DEFAULT_PORTS[scheme]) != port
        or parsed.userinfo
    ):
        raise _refuse("parser_mismatch")
