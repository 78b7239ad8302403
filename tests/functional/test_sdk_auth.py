"""bastion.sdk.BastionAuth in a separate resource-server app, against a real Bastion: offline
verification through the JWK Set, refetch on rotation (rate limited), live session checks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import Depends, FastAPI
from tests.functional.identity_helpers import (
    Login,
    assert_problem,
    client_for,
    create_account,
    identity_settings,
    login,
    running_app,
)

from bastion.config import Settings
from bastion.http.handlers import include as install_problem_handlers
from bastion.sdk import AuthenticatedUser, BastionAuth, KeySetUnavailable

BASTION = "https://testserver"


class CountingTransport(httpx.AsyncBaseTransport):
    """Bastion in process; counts the requests the SDK makes to it."""

    def __init__(self, app: FastAPI) -> None:
        self.inner = httpx.ASGITransport(app=app, client=("192.0.2.50", 40000))
        self.paths: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return await self.inner.handle_async_request(request)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return identity_settings(tmp_path)


@pytest.fixture
async def bastion_app(settings: Settings) -> AsyncIterator[FastAPI]:
    async with running_app(settings) as application:
        yield application


@pytest.fixture
def transport(bastion_app: FastAPI) -> CountingTransport:
    return CountingTransport(bastion_app)


@pytest.fixture
async def auth(transport: CountingTransport, settings: Settings) -> AsyncIterator[BastionAuth]:
    async with httpx.AsyncClient(transport=transport, base_url=BASTION) as client:
        yield BastionAuth(
            issuer=settings.access_tokens.issuer,
            audience=settings.access_tokens.audience,
            jwks_url=f"{BASTION}/.well-known/jwks.json",
            status_url=f"{BASTION}/v1/sessions/current/status",
            client=client,
        )


@pytest.fixture
async def resource(auth: BastionAuth) -> AsyncIterator[httpx.AsyncClient]:
    """Another service protected by the SDK."""
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/orders")
    async def orders(user: AuthenticatedUser = Depends(auth)) -> dict[str, object]:
        return {
            "subject": user.subject,
            "sid": user.session_id,
            "amr": list(user.amr),
            "acr": user.acr,
        }

    @app.post("/payouts")
    async def payouts(user: AuthenticatedUser = Depends(auth.live)) -> dict[str, str]:
        return {"subject": user.subject}

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://resource"
    ) as client:
        yield client


@pytest.fixture
async def session(bastion_app: FastAPI, settings: Settings) -> Login:
    async with client_for(bastion_app) as client:
        return await login(client, await create_account(client, settings))


async def test_offline_verification(resource: httpx.AsyncClient, session: Login) -> None:
    response = await resource.get("/orders", headers=session.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["sid"] == session.session_id
    assert body["amr"] == ["pwd"]
    assert body["acr"] == "aal1"


async def test_bad_tokens_are_refused(resource: httpx.AsyncClient, session: Login) -> None:
    assert_problem(await resource.get("/orders"), 401, "not_authenticated")
    forged = session.access_token[:-4] + (
        "AAAA" if not session.access_token.endswith("AAAA") else "BBBB"
    )
    assert_problem(
        await resource.get("/orders", headers={"Authorization": f"Bearer {forged}"}),
        401,
        "invalid_token",
    )


async def test_wrong_audience_is_refused(
    transport: CountingTransport, settings: Settings, session: Login
) -> None:
    async with httpx.AsyncClient(transport=transport, base_url=BASTION) as client:
        other = BastionAuth(
            issuer=settings.access_tokens.issuer,
            audience="another-service",
            jwks_url=f"{BASTION}/.well-known/jwks.json",
            client=client,
        )
        with pytest.raises(Exception, match="invalid") as caught:
            await other.verify(session.access_token)
    assert getattr(caught.value, "code", None) == "invalid_token"


async def test_unknown_kids_refetch_at_most_once_per_interval(
    auth: BastionAuth,
    bastion_app: FastAPI,
    resource: httpx.AsyncClient,
    transport: CountingTransport,
    session: Login,
    settings: Settings,
) -> None:
    now = [0.0]
    auth.jwks._monotonic = lambda: now[0]
    assert (await resource.get("/orders", headers=session.headers)).status_code == 200
    fetches = transport.paths.count("/.well-known/jwks.json")
    # A rotation: the new key is found by one refetch (once the refetch interval allows it).
    await bastion_app.state.services.identity.signing.rotate()
    async with client_for(bastion_app) as client:
        fresh = await login(client, await create_account(client, settings))
    assert_problem(await resource.get("/orders", headers=fresh.headers), 401, "invalid_token")
    assert transport.paths.count("/.well-known/jwks.json") == fetches
    now[0] += 31
    assert (await resource.get("/orders", headers=fresh.headers)).status_code == 200
    assert (await resource.get("/orders", headers=session.headers)).status_code == 200  # old key
    assert transport.paths.count("/.well-known/jwks.json") == fetches + 1
    # Tokens naming invented kids: no further fetch within the interval.
    header = fresh.access_token.split(".", 1)[0]
    for n in range(20):
        bogus = f"{header}x{n}." + fresh.access_token.split(".", 1)[1]
        await resource.get("/orders", headers={"Authorization": f"Bearer {bogus}"})
    assert transport.paths.count("/.well-known/jwks.json") == fetches + 1


async def test_live_check_sees_a_logout_at_once(
    bastion_app: FastAPI, resource: httpx.AsyncClient, session: Login
) -> None:
    assert (await resource.post("/payouts", headers=session.headers)).status_code == 200
    async with client_for(bastion_app) as client:
        assert (
            await client.delete("/v1/sessions/current", headers=session.headers)
        ).status_code == 204
    assert_problem(await resource.post("/payouts", headers=session.headers), 401, "invalid_token")


def test_plain_http_needs_a_named_opt_in() -> None:
    with pytest.raises(ValueError, match="allow_insecure_http"):
        BastionAuth(issuer="x", audience="y", jwks_url="http://id.example.com/jwks.json")
    BastionAuth(
        issuer="x", audience="y", jwks_url="http://localhost/jwks.json", allow_insecure_http=True
    )


class FlakyTransport(httpx.AsyncBaseTransport):
    """Bastion, until ``down`` is set: then every request fails to connect."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.down = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        return await self.inner.handle_async_request(request)


async def test_bastion_down_fails_closed_but_known_keys_keep_working(
    transport: CountingTransport, settings: Settings, session: Login
) -> None:
    flaky = FlakyTransport(transport)
    async with httpx.AsyncClient(transport=flaky, base_url=BASTION) as client:
        auth = BastionAuth(
            issuer=settings.access_tokens.issuer,
            audience=settings.access_tokens.audience,
            jwks_url=f"{BASTION}/.well-known/jwks.json",
            status_url=f"{BASTION}/v1/sessions/current/status",
            client=client,
            cache_seconds=0,
        )
        flaky.down = True
        with pytest.raises(KeySetUnavailable):
            await auth.verify(session.access_token)  # nothing cached: refuse
        flaky.down = False
        assert (await auth.verify(session.access_token)).session_id == session.session_id
        flaky.down = True
        # Keys fetched earlier still verify while Bastion is unreachable...
        assert (await auth.verify(session.access_token)).session_id == session.session_id
        # ...but a live check cannot be answered: refused, never assumed.
        with pytest.raises(KeySetUnavailable):
            await auth.confirm_live(session.access_token)
