"""The passkeys page: a minimal HTML page and its script, driving the passkey API from a browser.

``GET /passkeys`` and ``GET /passkeys/passkeys.js``. Bastion's default CSP
(``default-src 'none'``) forbids every script; this page gets its own policy that allows one
thing more: scripts from its own origin (``script-src 'self'``, the one file below, pinned by
Subresource Integrity) and ``fetch`` to its own origin. No inline script or style, no
``unsafe-inline`` or ``unsafe-eval``, Trusted Types required (the script writes text only),
no framing, no form posts, no ``<base>``. The script is served as ``text/javascript`` with
``nosniff``, so no JSON answer of the API can ever be loaded as a script.
"""

from __future__ import annotations

import base64
import hashlib
from functools import cache
from importlib import resources

from fastapi import APIRouter, FastAPI
from starlette.responses import Response

__all__ = ["PAGE_CSP", "PAGE_PATH", "SCRIPT_PATH", "include"]

PAGE_PATH = "/passkeys"
SCRIPT_PATH = "/passkeys/passkeys.js"
PAGE_CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    )
)


@cache
def _static(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


@cache
def page_html() -> bytes:
    digest = hashlib.sha384(_static("passkeys.js")).digest()
    integrity = "sha384-" + base64.b64encode(digest).decode("ascii")
    return _static("passkeys.html").replace(b"{integrity}", integrity.encode("ascii"))


def include(app: FastAPI) -> None:
    router = APIRouter(tags=["passkeys page"], include_in_schema=False)

    @router.get(PAGE_PATH)
    async def passkeys_page() -> Response:
        return Response(
            page_html(),
            media_type="text/html; charset=utf-8",
            headers={"Content-Security-Policy": PAGE_CSP},
        )

    @router.get(SCRIPT_PATH)
    async def passkeys_script() -> Response:
        return Response(_static("passkeys.js"), media_type="text/javascript; charset=utf-8")

    app.include_router(router)
