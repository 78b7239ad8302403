"""``GET /.well-known/jwks.json``: the public keys that verify Bastion's access tokens."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from pydantic import BaseModel
from starlette.responses import JSONResponse

from bastion.identity.tokens.rotation import SigningKeyManager

__all__ = ["JWKS_MAX_AGE_SECONDS", "include"]

#: Resource servers may cache the set this long; they refetch on an unknown kid anyway.
JWKS_MAX_AGE_SECONDS = 300


class JwkSet(BaseModel):
    keys: list[dict[str, Any]]


def include(app: FastAPI, signing: SigningKeyManager) -> None:
    router = APIRouter(tags=["tokens"])

    @router.get(
        "/.well-known/jwks.json",
        response_model=JwkSet,
        summary="Public signing keys (RFC 7517): every key whose tokens may still be valid.",
    )
    async def jwks() -> JSONResponse:
        await signing.ensure()
        body = await signing.tokens.jwks()
        return JSONResponse(
            body, headers={"Cache-Control": f"public, max-age={JWKS_MAX_AGE_SECONDS}"}
        )

    app.include_router(router)
