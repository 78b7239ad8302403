"""Instructions per access-token verification, with and without the signature cache
(:mod:`bastion.identity.tokens.sigcache`), counted by valgrind's callgrind.

Targets: ``service`` (:meth:`AccessTokenService.verify` over an in-memory key store, as
Bastion's authentication calls it below its own verified-token memory) and ``sdk``
(:meth:`bastion.sdk.BastionAuth.verify`, a resource server with a JWK Set already fetched), each
``cached`` (the default settings: one client's token presented again) and ``uncached``
(``signature_cache=False``: every signature checked). The same token is verified ``--requests``
times after a warm-up; each call is a full verification except the skipped signature check.
Usage::

    .venv/bin/python -m bench.identity.verify_instructions [--requests 2000] [service-cached ...]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
from pathlib import Path
from typing import Any

from bench import callgrind

TARGETS = ("service-cached", "service-uncached", "sdk-cached", "sdk-uncached")
_WARMUP = 50
ISSUER = "https://id.example.com"
AUDIENCE = "bench"


async def _verifier(target: str) -> tuple[Any, str]:
    """``(verify, token)``: a one-argument coroutine function and a valid token for it."""
    import httpx  # noqa: PLC0415

    from bastion.clock import SystemClock  # noqa: PLC0415
    from bastion.identity.tokens import (  # noqa: PLC0415
        AccessTokenService,
        AccessTokenSettings,
        AssuranceLevel,
        AuthMethod,
        InMemoryKeyStore,
    )
    from bastion.sdk import BastionAuth  # noqa: PLC0415

    kind, mode = target.split("-")
    cached = mode == "cached"
    settings = AccessTokenSettings(issuer=ISSUER, audience=AUDIENCE, signature_cache=cached)
    clock = SystemClock()
    service = AccessTokenService(settings, InMemoryKeyStore.from_settings(settings, clock), clock)
    await service.ensure_active_key()
    token = await service.issue(
        subject="bench-user",
        session_id="bench-session",
        amr=[AuthMethod.PASSWORD],
        acr=AssuranceLevel.AAL1,
    )
    if kind == "service":
        return service.verify, token
    jwks = await service.jwks()
    client = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda _: httpx.Response(200, json=jwks))
    )
    auth = BastionAuth(
        issuer=ISSUER,
        audience=AUDIENCE,
        jwks_url=f"{ISSUER}/.well-known/jwks.json",
        client=client,
        signature_cache=cached,
    )
    return auth.verify, token


async def _run(target: str, n: int, flags: Path | None) -> None:
    verify, token = await _verifier(target)
    for _ in range(_WARMUP):
        await verify(token)
    if flags is not None:
        callgrind.ready(flags)
    for _ in range(n):
        await verify(token)
    if flags is not None:
        callgrind.done(flags)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", help=f"some of {', '.join(TARGETS)} (default all)")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--drive", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        target, n, flags = args.drive
        asyncio.run(_run(target, int(n), Path(flags)))
        return
    unknown = set(args.targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is missing: apt-get install -y valgrind")
    print(f"{args.requests} verifications per target, instructions per verification")
    for target in args.targets or TARGETS:
        value = callgrind.count(__spec__.name, [target], args.requests, label=target)
        print(f"{target:<18} {value:>12,.0f}")


if __name__ == "__main__":
    main()
