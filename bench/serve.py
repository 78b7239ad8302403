"""Serve one benchmark app in one uvicorn worker::

    python -m bench.serve MODULE:FACTORY PORT bastion|stock

``bastion``: as ``bastion serve`` serves Bastion, uvicorn with Bastion's protocol
(``bastion.http.protocol``: uvicorn's httptools protocol plus the header-block extension).
``stock``: stock uvicorn with httptools, as a plain FastAPI or Starlette deployment runs (the
bare apps). No access log, no ``Server`` header, for both.
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn


def protocol_for(kind: str) -> Any:
    """The HTTP protocol for ``kind`` (``bastion`` or ``stock``)."""
    if kind not in {"bastion", "stock"}:
        raise SystemExit(f"protocol must be bastion or stock, not {kind!r}")
    if kind == "bastion":
        from bastion.http.protocol import HttpToolsProtocol  # noqa: PLC0415

        return HttpToolsProtocol
    return "httptools"


def main(argv: list[str]) -> None:
    target, port, kind = argv[0], int(argv[1]), argv[2]
    uvicorn.run(
        target,
        factory=True,
        port=port,
        http=protocol_for(kind),
        log_level="warning",
        access_log=False,
        server_header=False,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
