"""Attack tests: user enumeration.

Login, registration, password reset and email verification must answer an existing and an
unknown account identically: same status, same body (but the request id), same headers (but
request id and date), and about the same time. Each pair of requests comes from fresh client
addresses so per-IP throttling treats both alike.

The timing test uses the real default Argon2 parameters: the hash dominates a login, and an
implementation that skips it for unknown accounts answers those several times faster.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from tests.functional.identity_helpers import (
    DISPLAY_NAME,
    OTHER_PASSWORD,
    PASSWORD,
    WRONG_PASSWORD,
    assert_problem,
    assert_same_answer,
    client_for,
    client_ip,
    create_account,
    fresh_client,
    identity_settings,
    login,
    login_response,
    register,
    running_app,
    token_in,
    unique_email,
    wait_for_mail,
)

from bastion.clock import FrozenClock
from bastion.config import Settings
from bastion.identity.passwords import PasswordSettings
from bastion.identity.passwords import pool as hashing_pool

#: Issue 4: median response times of existing and unknown accounts within this ratio.
MAX_TIMING_RATIO = 1.25
TIMING_TRIES = 50


class Clients:
    """A fresh client address for every request, so no per-IP budget tells them apart."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.count = 0

    async def post(self, path: str, json: dict[str, object]) -> httpx.Response:
        self.count += 1
        async with client_for(self.app, client_ip(self.count)) as client:
            return await client.post(path, json=json)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return identity_settings(tmp_path, database_url=database_url)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    async with running_app(settings, clock=FrozenClock()) as application:
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as c:
        yield c


async def test_login_answers_alike(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    account = await create_account(client, settings)
    clients = Clients(app)
    existing = await clients.post(
        "/v1/sessions", {"email": account.email, "password": WRONG_PASSWORD}
    )
    unknown = await clients.post(
        "/v1/sessions", {"email": unique_email(), "password": WRONG_PASSWORD}
    )
    assert_problem(existing, 401, "invalid_credentials")
    assert_same_answer(existing, unknown)


async def test_login_of_an_unverified_account_answers_like_an_unknown_one(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    email = unique_email()
    assert (await register(client, email)).status_code == 202
    clients = Clients(app)
    pending = await clients.post("/v1/sessions", {"email": email, "password": WRONG_PASSWORD})
    unknown = await clients.post(
        "/v1/sessions", {"email": unique_email(), "password": WRONG_PASSWORD}
    )
    assert_same_answer(pending, unknown)


async def test_lockout_answers_alike(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    """Backoff engages for unknown accounts too, after as many failures, with the same
    Retry-After: otherwise "is this account locked?" becomes "does this account exist?"."""
    account = await create_account(client, settings)
    ghost = unique_email()
    clients = Clients(app)
    answers: dict[str, list[httpx.Response]] = {account.email: [], ghost: []}
    for _ in range(30):
        for email, responses in answers.items():
            body = {"email": email, "password": WRONG_PASSWORD}
            responses.append(await clients.post("/v1/sessions", body))
    for existing, unknown in zip(answers[account.email], answers[ghost], strict=True):
        assert_same_answer(existing, unknown)
    last = answers[account.email][-1]
    assert_problem(last, 429, "too_many_attempts")
    assert int(last.headers["retry-after"]) > 0


async def test_registration_answers_alike(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    account = await create_account(client, settings)
    pending = unique_email()
    clients = Clients(app)
    body = {"password": OTHER_PASSWORD, "display_name": DISPLAY_NAME}
    taken = await clients.post("/v1/accounts", {"email": account.email, **body})
    new = await clients.post("/v1/accounts", {"email": unique_email(), **body})
    first = await clients.post("/v1/accounts", {"email": pending, **body})
    again = await clients.post("/v1/accounts", {"email": pending, **body})  # not yet verified
    assert taken.status_code == 202, taken.text
    assert taken.json() == {"status": "accepted"}
    for other in (new, first, again):
        assert_same_answer(taken, other)


async def test_registration_with_a_differently_written_email_answers_alike(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    """Case and NFKC variants of a taken address are the same account (and the same answer);
    they must not create a second account that shadows the first."""
    account = await create_account(client, settings)
    local, _, domain = account.email.partition("@")
    clients = Clients(app)
    body = {"password": OTHER_PASSWORD, "display_name": DISPLAY_NAME}
    fresh = await clients.post("/v1/accounts", {"email": unique_email(), **body})
    for variant in (
        account.email.upper(),
        f"{local.upper()}@{domain}",
        f"{local}@{domain.upper()}",
    ):
        assert_same_answer(fresh, await clients.post("/v1/accounts", {"email": variant, **body}))
    login = await clients.post(
        "/v1/sessions", {"email": account.email.upper(), "password": PASSWORD}
    )
    assert login.status_code == 200, login.text


async def test_password_forgot_answers_alike(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    account = await create_account(client, settings)
    clients = Clients(app)
    existing = await clients.post("/v1/password/forgot", {"email": account.email})
    unknown = await clients.post("/v1/password/forgot", {"email": unique_email()})
    malformed = await clients.post("/v1/password/forgot", {"email": "no-at-sign.example.com"})
    assert existing.status_code == 202, existing.text
    assert existing.json() == {"status": "accepted"}
    assert_same_answer(existing, unknown)
    # A malformed address may be refused as such (422), but never as "unknown".
    assert malformed.status_code in {202, 422}, malformed.text
    await wait_for_mail(settings, account.email, "password_reset")


async def test_email_verification_answers_alike(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    """Unknown, already used and superseded tokens are refused identically."""
    email = unique_email()
    assert (await register(client, email)).status_code == 202
    used = token_in(await wait_for_mail(settings, email, "verify_email"))
    clients = Clients(app)
    assert (await clients.post("/v1/accounts/verify-email", {"token": used})).status_code == 200
    answers = [
        await clients.post("/v1/accounts/verify-email", {"token": token})
        for token in (used, used[:-1] + ("A" if used[-1] != "A" else "B"), "x" * 43, "")
    ]
    assert_problem(answers[0], 400, "token_invalid")
    for other in answers[1:-1]:
        assert_same_answer(answers[0], other)
    assert answers[-1].status_code in {400, 422}


async def test_expired_verification_token_answers_like_an_unknown_one(
    tmp_path: Path, database_url: str
) -> None:
    clock = FrozenClock()
    settings = identity_settings(tmp_path, database_url=database_url)
    async with running_app(settings, clock=clock) as app, client_for(app) as client:
        email = unique_email()
        assert (await register(client, email)).status_code == 202
        token = token_in(await wait_for_mail(settings, email, "verify_email"))
        clock.advance(timedelta(hours=24, seconds=1))
        expired = await client.post("/v1/accounts/verify-email", json={"token": token})
        unknown = await client.post("/v1/accounts/verify-email", json={"token": "y" * 43})
        assert_problem(expired, 400, "token_invalid")
        assert_same_answer(expired, unknown)


# -- timing ----------------------------------------------------------------------------------
Probe = Callable[[int], Awaitable[float]]


async def _medians(existing: Probe, unknown: Probe) -> tuple[float, float]:
    """Median seconds of each probe over TIMING_TRIES, interleaved so drift hits both alike."""
    for n in range(3):  # warm-up: first-call costs (imports, caches, pool threads)
        await existing(n)
        await unknown(n)
    times: dict[str, list[float]] = {"existing": [], "unknown": []}
    for n in range(TIMING_TRIES):
        first, second = (existing, unknown) if n % 2 else (unknown, existing)
        a, b = await first(n), await second(n)
        times["existing"].append(a if first is existing else b)
        times["unknown"].append(b if first is existing else a)
    return statistics.median(times["existing"]), statistics.median(times["unknown"])


async def _timed(app: FastAPI, ip: str, path: str, body: dict[str, str]) -> float:
    async with client_for(app, ip) as client:
        start = time.perf_counter()
        response = await client.post(path, json=body)
        elapsed = time.perf_counter() - start
    assert response.status_code < 500, response.text
    assert response.status_code != 429, "throttled: the probe must not trip backoff"
    return elapsed


@pytest.mark.slow
@pytest.mark.timing
@pytest.mark.parametrize("flow", ["login", "registration", "password_forgot"])
async def test_response_time_does_not_reveal_accounts(tmp_path: Path, flow: str) -> None:
    """Median response time of existing vs unknown accounts within 1.25x, real Argon2."""
    settings = identity_settings(tmp_path, passwords=PasswordSettings())
    async with running_app(settings) as app:
        accounts = []
        for _ in range(TIMING_TRIES + 3):
            async with fresh_client(app) as client:
                accounts.append(await create_account(client, settings))
        path, field = {
            "login": ("/v1/sessions", "password"),
            "registration": ("/v1/accounts", "password"),
            "password_forgot": ("/v1/password/forgot", None),
        }[flow]

        def body(email: str) -> dict[str, str]:
            extra = {"display_name": DISPLAY_NAME} if flow == "registration" else {}
            secret = WRONG_PASSWORD if flow == "login" else OTHER_PASSWORD
            return {"email": email, **({field: secret} if field else {}), **extra}

        async def existing(n: int) -> float:
            return await _timed(app, client_ip(2 * n), path, body(accounts[n].email))

        async def unknown(n: int) -> float:
            return await _timed(app, client_ip(2 * n + 1), path, body(unique_email("ghost")))

        existing_s, unknown_s = await _medians(existing, unknown)
    ratio = max(existing_s, unknown_s) / min(existing_s, unknown_s)
    detail = f"{flow}: existing {existing_s * 1000:.2f} ms, unknown {unknown_s * 1000:.2f} ms"
    assert ratio <= MAX_TIMING_RATIO, f"{detail}, ratio {ratio:.2f}"
    if flow == "login":
        # The hash ran for both: a login without it would take well under a millisecond.
        assert unknown_s > 0.005, detail


#: Concurrent login clients for the backlog test: more than the pool's workers, so verifications
#: queue and the pool hands login outcomes over in batches (identity/passwords/pool.py).
BACKLOG_CLIENTS = 6
BACKLOG_ROUNDS = 8


@pytest.mark.slow
@pytest.mark.timing
async def test_login_time_under_a_backlog_does_not_reveal_accounts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under a backlog of logins the hashing pool holds finished verifications and hands them
    to the loop in batches: a held login waits for other logins only, so existing and unknown
    accounts still answer in the same time (median ratio within 1.25), batches included."""
    batches: list[int] = []
    hand_over = hashing_pool._hand_over  # counts the batches the workers hand over

    def counted(held: list[object]) -> None:
        batches.append(len(held))
        hand_over(held)  # type: ignore[arg-type]

    monkeypatch.setattr(hashing_pool, "_hand_over", counted)
    settings = identity_settings(tmp_path, passwords=PasswordSettings())
    async with running_app(settings) as app:
        accounts = []
        for _ in range(BACKLOG_CLIENTS * BACKLOG_ROUNDS):
            async with fresh_client(app) as client:
                accounts.append(await create_account(client, settings))
        times: dict[str, list[float]] = {"existing": [], "unknown": []}
        batches.clear()  # the registrations' hashes are not logins: never held

        async def one_client(c: int) -> None:
            for r in range(BACKLOG_ROUNDS):
                n = c * BACKLOG_ROUNDS + r
                probes = [("existing", accounts[n].email), ("unknown", unique_email("ghost"))]
                for kind, email in probes if (n % 2) else probes[::-1]:
                    body = {"email": email, "password": WRONG_PASSWORD}
                    ip = client_ip(10_000 + 2 * n + (kind == "unknown"))
                    times[kind].append(await _timed(app, ip, "/v1/sessions", body))

        await asyncio.gather(*(one_client(c) for c in range(BACKLOG_CLIENTS)))
    existing_s, unknown_s = (
        statistics.median(times["existing"]),
        statistics.median(times["unknown"]),
    )
    detail = (
        f"existing {existing_s * 1000:.2f} ms, unknown {unknown_s * 1000:.2f} ms, "
        f"batches handed over {len(batches)} (largest {max(batches, default=0)})"
    )
    assert max(batches, default=0) > 1, f"no backlog: nothing was batched ({detail})"
    ratio = max(existing_s, unknown_s) / min(existing_s, unknown_s)
    print(f"login under a backlog: {detail}, ratio {ratio:.2f}")  # noqa: T201 - the test's figures
    assert ratio <= MAX_TIMING_RATIO, f"{detail}, ratio {ratio:.2f}"


async def test_email_change_answers_alike(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    """Asking to move to a taken address answers like a free one (the taken address's owner is
    told instead), and changes nothing until the new address confirms."""
    victim = await create_account(client, settings)
    attacker = await create_account(client, settings)
    session = await login(client, attacker)

    async def change(new_email: str) -> httpx.Response:
        return await client.post(
            "/v1/account/email",
            json={"new_email": new_email, "current_password": attacker.password},
            headers=session.headers,
        )

    taken, free = await change(victim.email), await change(unique_email())
    assert taken.status_code == 202, taken.text
    assert_same_answer(taken, free)
    profile = (await client.get("/v1/account", headers=session.headers)).json()
    assert profile["email"] == attacker.email
    assert (await login_response(client, victim.email, victim.password)).status_code == 200


@pytest.mark.parametrize("race", ["registered-first", "concurrent"])
async def test_email_change_confirmed_after_the_address_was_taken(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, race: str
) -> None:
    """Someone registers the address between the change request and its confirmation: the
    confirmation must neither crash (a unique-constraint violation as a 500) nor leave two
    accounts on one address. Registration completes in the background after its 202, so
    "concurrent" confirms while it may still be running (a check-then-update race)."""
    account = await create_account(client, settings)
    session = await login(client, account)
    target = unique_email("target")
    response = await client.post(
        "/v1/account/email",
        json={"new_email": target, "current_password": account.password},
        headers=session.headers,
    )
    assert response.status_code == 202, response.text
    token = token_in(await wait_for_mail(settings, target, "verify_email"))
    async with client_for(app, "198.51.100.77") as other:
        assert (await register(other, target, OTHER_PASSWORD)).status_code == 202
    if race == "registered-first":
        await wait_for_mail(settings, target, "verify_email", after=1)
    confirm = await client.post("/v1/accounts/verify-email", json={"token": token})
    assert confirm.status_code in {200, 400}, confirm.text
    # Whatever happened, one address, one account: at most one of the two passwords works.
    async with client_for(app, "198.51.100.78") as probe:
        mine = await login_response(probe, target, account.password)
        theirs = await login_response(probe, target, OTHER_PASSWORD)
    assert not (mine.status_code == 200 and theirs.status_code == 200)
