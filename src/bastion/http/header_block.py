"""Constant response headers validated once, sent as one block: a small ASGI extension.

Every Bastion answer carries the same eight security headers (``security_headers``). An ASGI
server validates each response header on every response (uvicorn runs two regular expressions,
a lowercase and three comparisons per header, about 4,000 CPU instructions each); for headers
that never change that work repeats an answer already known at start-up, and on a trivial
route it was a tenth of a request's cost.

A server that supports the extension advertises it in ``scope["extensions"]`` under
:data:`EXTENSION`; the HTTP core then leaves those constant headers out of the
``http.response.start`` message's ``headers`` and puts them, as one :class:`HeaderBlock`, under
:data:`MESSAGE_KEY`. The server writes the block after the message's headers. Bastion's own
protocol (``bastion.http.protocol``, used by ``bastion serve``) is such a server; under any
other ASGI server nothing is advertised and the headers travel as ordinary headers.

A block can only be made by :meth:`HeaderBlock.of`, which applies the checks the server would
have applied (the same character rules as uvicorn's, and no framing headers: ``content-length``,
``transfer-encoding`` and ``connection`` stay the server's business), so a server can write a
block's bytes as they are. The server accepts nothing but an exact :class:`HeaderBlock`.

A middleware placed outside the HTTP core sees the constant headers only in the block: it must
pass the response start on as a copy (``{**message, ...}``), never rebuild it from ``headers``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["EXTENSION", "MESSAGE_KEY", "HeaderBlock", "InvalidHeader"]

#: ``scope["extensions"]`` key by which a server says it writes header blocks.
EXTENSION = "bastion.header_block"
#: ``http.response.start`` message key holding the :class:`HeaderBlock`.
MESSAGE_KEY = "bastion.header_block"

# The rules of uvicorn's HTTP/1.1 protocols (RFC 9110 tokens for names; no control characters
# but tab in values), plus lowercase names as HTTP/2 requires and uvicorn writes them.
_INVALID_NAME = re.compile(rb'[\x00-\x1f\x7f()<>@,;:\[\]={} \t\\"A-Z]')
_INVALID_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
#: Headers that frame the message or the connection: never in a block.
_FRAMING = frozenset({b"content-length", b"transfer-encoding", b"connection"})


class InvalidHeader(ValueError):
    """A header that may not be part of a block (raised at start-up, never per request)."""


class HeaderBlock(bytes):
    """Headers as the bytes a server writes (``name: value\\r\\n`` each), checked on creation.

    Immutable like ``bytes``; :attr:`headers` keeps the pairs for servers and tests that want
    them.
    """

    headers: tuple[tuple[bytes, bytes], ...]

    @classmethod
    def of(cls, headers: Iterable[tuple[bytes, bytes]]) -> HeaderBlock:
        pairs = tuple(headers)
        for name, value in pairs:
            if not name or _INVALID_NAME.search(name):
                raise InvalidHeader(f"invalid header name {name!r}")
            if _INVALID_VALUE.search(value):
                raise InvalidHeader(f"invalid value for header {name!r}")
            if name in _FRAMING:
                raise InvalidHeader(f"{name!r} frames the message: the server sets it")
        block = super().__new__(cls, b"".join(b"%b: %b\r\n" % pair for pair in pairs))
        block.headers = pairs
        return block
