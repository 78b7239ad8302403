"""Password history (``passwords.history_size``, off by default): a change, a reset and the
reset after an administrator's forced reset all refuse the last N passwords with 422
``password_rejected`` and reason ``reused``; older ones and new ones are accepted. Without the
option, going back to the previous password is allowed (NIST SP 800-63B's default)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from tests.functional.identity_helpers import (
    FAST_PASSWORDS,
    PASSWORD,
    Account,
    assert_problem,
    client_for,
    create_account,
    identity_settings,
    login,
    mails_to,
    running_app,
    setup_admin,
    token_in,
    wait_for_mail,
)

from bastion.clock import FrozenClock
from bastion.config import Settings

#: Strong under the default policy and unrelated to the test account's name and email.
SECOND = "glacier umbrella fennel 3120"
THIRD = "harbor quilted mango 8845"
FOURTH = "sundial parsnip ocelot 2267"
HISTORY = 3


@dataclass
class Stack:
    app: FastAPI
    settings: Settings
    http: httpx.AsyncClient
    account: Account


async def _stack(tmp_path: Path, database_url: str, history: int) -> AsyncIterator[Stack]:
    passwords = FAST_PASSWORDS.model_copy(update={"history_size": history})
    settings = identity_settings(tmp_path, database_url=database_url, passwords=passwords)
    async with running_app(settings, clock=FrozenClock()) as app, client_for(app) as http:
        yield Stack(app, settings, http, await create_account(http, settings))


@pytest.fixture
async def stack(tmp_path: Path, database_url: str) -> AsyncIterator[Stack]:
    async for built in _stack(tmp_path, database_url, HISTORY):
        yield built


@pytest.fixture
async def no_history(tmp_path: Path, database_url: str) -> AsyncIterator[Stack]:
    async for built in _stack(tmp_path, database_url, 0):
        yield built


async def _change(stack: Stack, new: str) -> httpx.Response:
    session = await login(stack.http, stack.account)
    response = await stack.http.post(
        "/v1/account/password",
        json={"current_password": stack.account.password, "new_password": new},
        headers=session.headers,
    )
    if response.status_code == 204:
        stack.account.password = new
    return response


async def _reset(stack: Stack, new: str, *, request: bool = True) -> httpx.Response:
    """Reset with the token of a new reset mail (``request``), else of the last one."""
    email = stack.account.email
    before = len(mails_to(stack.settings, email, "password_reset"))
    if request:
        await stack.http.post("/v1/password/forgot", json={"email": email})
    else:
        before = max(before - 1, 0)  # the last mail, or the first still on its way
    mail = await wait_for_mail(stack.settings, email, "password_reset", after=before)
    response = await stack.http.post(
        "/v1/password/reset", json={"token": token_in(mail), "new_password": new}
    )
    if response.status_code == 204:
        stack.account.password = new
    return response


def assert_reused(response: httpx.Response) -> None:
    body = assert_problem(response, 422, "password_rejected")
    assert body["reasons"] == ["reused"], body


async def test_a_change_refuses_the_last_n_passwords(stack: Stack) -> None:
    assert_reused(await _change(stack, PASSWORD))  # the current one
    assert (await _change(stack, SECOND)).status_code == 204
    assert (await _change(stack, THIRD)).status_code == 204
    assert_reused(await _change(stack, PASSWORD))
    assert_reused(await _change(stack, SECOND))
    assert (await _change(stack, FOURTH)).status_code == 204
    # PASSWORD is now the 4th most recent: beyond the last 3.
    assert (await _change(stack, PASSWORD)).status_code == 204


async def test_a_reset_refuses_the_last_n_passwords(stack: Stack) -> None:
    assert (await _change(stack, SECOND)).status_code == 204
    assert_reused(await _reset(stack, PASSWORD))
    assert_reused(await _reset(stack, SECOND, request=False))  # the current one
    # A refused reset leaves its token usable.
    assert (await _reset(stack, THIRD, request=False)).status_code == 204
    assert (await login(stack.http, stack.account)).access_token


async def test_a_forced_reset_keeps_the_replaced_password_in_the_history(stack: Stack) -> None:
    admin = await login(stack.http, await setup_admin(stack.app, stack.http))
    me = await login(stack.http, stack.account)
    user_id = (await stack.http.get("/v1/account", headers=me.headers)).json()["id"]
    forced = await stack.http.post(
        f"/v1/admin/users/{user_id}/force-password-reset", headers=admin.headers
    )
    assert forced.status_code == 204, forced.text
    assert_reused(await _reset(stack, PASSWORD, request=False))
    assert (await _reset(stack, SECOND, request=False)).status_code == 204


async def test_without_the_option_the_previous_password_may_come_back(
    no_history: Stack,
) -> None:
    assert (await _change(no_history, SECOND)).status_code == 204
    assert (await _change(no_history, PASSWORD)).status_code == 204
