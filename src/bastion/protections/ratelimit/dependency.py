"""Per-route limits as a FastAPI dependency::

    upload_limit = Policy.per("upload", 10, 3600, keys=[KeyKind.USER])

    @router.post("/v1/uploads", dependencies=[Depends(rate_limit(upload_limit))])
    async def upload(...): ...

The dependency counts the request against its policies (all must pass) with the limiter that
:class:`~bastion.protections.ratelimit.middleware.RateLimitMiddleware` published, the one passed
in, or ``app.state.rate_limiter``; with none configured it raises (fail closed: a limit that was
declared must never be skipped silently). A refused request raises
:class:`~bastion.protections.ratelimit.errors.RateLimited`, rendered as 429 problem+json with
``Retry-After`` and the RateLimit fields; an allowed response carries the RateLimit fields.

Per-user policies need the user: declare the authentication dependency first, so that it has set
``request.state.user_id`` (see :mod:`bastion.protections.ratelimit.keys`) when this one runs. A
policy counted per user does not apply to an anonymous request: give public routes a per-IP
policy too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from bastion.protections.ratelimit.policies import Applied, Policy
from bastion.protections.ratelimit.services import STATE_LIMITER, RateLimiter


def _limiter_for(request: Request, limiter: RateLimiter | None) -> RateLimiter:
    if limiter is not None:
        return limiter
    found = request.scope.get("state", {}).get(STATE_LIMITER)
    if found is None:
        found = getattr(request.app.state, "rate_limiter", None)
    if not isinstance(found, RateLimiter):
        # A wiring mistake, not a bad argument: 500, never an unlimited route.
        raise RuntimeError(  # noqa: TRY004
            "rate_limit() needs a RateLimiter: add RateLimitMiddleware or pass one"
        )
    return found


def rate_limit(
    *policies: Policy, limiter: RateLimiter | None = None
) -> Callable[[Request, Response], Awaitable[None]]:
    """A dependency enforcing ``policies`` on the route it is declared on."""
    if not policies:
        raise ValueError("rate_limit() needs at least one policy")
    # The route already selects the requests: path templates of these policies are not consulted.
    applied: tuple[Applied, ...] = tuple((p, p.paths[0] if p.paths else "") for p in policies)

    async def enforce_rate_limit(request: Request, response: Response) -> None:
        active = _limiter_for(request, limiter)
        verdict = await active.check(request.scope, applied)
        if not verdict.allowed:
            raise verdict.error()
        for name, value in verdict.headers():
            response.headers.append(name.decode("latin-1"), value.decode("latin-1"))

    return enforce_rate_limit
