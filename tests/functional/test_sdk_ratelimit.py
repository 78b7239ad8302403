"""bastion.sdk's rate limiting in a plain FastAPI service (not Bastion's app)."""

from __future__ import annotations

import httpx
from fastapi import Depends, FastAPI

from bastion.sdk import (
    KeyKind,
    Policy,
    Rate,
    RateLimitSettings,
    build_rate_limiting,
    install_problem_handlers,
    rate_limit,
)

#: A route-level budget declared in the service's own code.
REPORTS = Policy("reports", Rate.per(2, 3600), keys=(KeyKind.IP,))


def make_service() -> FastAPI:
    limits = build_rate_limiting(RateLimitSettings())
    app = FastAPI(middleware=[limits.concurrency_middleware(), limits.rate_limit_middleware()])
    app.state.rate_limiter = limits.limiter
    install_problem_handlers(app)

    @app.post("/reports", dependencies=[Depends(rate_limit(REPORTS))])
    async def create_report() -> dict[str, str]:
        return {"status": "created"}

    return app


async def test_per_route_dependency_limits_and_answers_problem_json() -> None:
    transport = httpx.ASGITransport(app=make_service(), client=("198.51.100.4", 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        first = await client.post("/reports")
        second = await client.post("/reports")
        third = await client.post("/reports")
    assert [first.status_code, second.status_code] == [200, 200]
    assert third.status_code == 429
    assert third.headers["content-type"].startswith("application/problem+json")
    assert third.json()["code"] == "rate_limited"
    assert int(third.headers["retry-after"]) > 0
    assert "reports" in third.headers["ratelimit-policy"]


async def test_another_client_has_its_own_budget() -> None:
    app = make_service()
    for ip in ("198.51.100.5", "198.51.100.6"):
        transport = httpx.ASGITransport(app=app, client=(ip, 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            assert (await client.post("/reports")).status_code == 200
