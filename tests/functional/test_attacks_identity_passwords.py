"""Attack tests: weak passwords never get in.

The 10,000 most common passwords (``../shared/conformance/passwords/top-10000.txt``) are all
rejected by the default policy: every one through the password service directly (fast), and a
sample of 50 end to end through ``POST /v1/accounts`` (422 ``password_rejected``, and no account
is created: the address can still register with a strong password afterwards).
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from tests.functional import identity_fixtures
from tests.functional.identity_helpers import (
    PASSWORD,
    assert_problem,
    fresh_client,
    mails_to,
    register,
    unique_email,
    verify_email,
)

from bastion.config import Settings
from bastion.identity.passwords import PasswordService, PasswordSettings, UserInfo

# Shared fixtures (see identity_fixtures); this module defines only its variants.
settings, app, client = (
    # Only hashing is made cheap; every policy setting keeps its default.
    identity_fixtures.sqlite_settings,
    identity_fixtures.app,
    identity_fixtures.client,
)

#: tests/functional/<this file> -> parents[2] is the repository root; the data sits beside it.
TOP_PASSWORDS = Path(__file__).parents[2] / ".." / "shared" / "conformance" / "passwords"
SAMPLE = 50


def common_passwords() -> list[str]:
    path = TOP_PASSWORDS / "top-10000.txt"
    if not path.exists():
        reason = f"{path.resolve()} is missing (expected ../shared/conformance)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    words = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [w for w in words if w]


def _policy_settings() -> PasswordSettings:
    """The default policy (hash parameters do not take part in policy decisions)."""
    return PasswordSettings()


async def test_the_default_policy_rejects_the_top_10000(settings: Settings) -> None:
    passwords = common_passwords()
    assert len(passwords) >= 9_900
    # The app's own policy is the default one (only hashing is made cheap in tests).
    policy = settings.passwords.model_dump(exclude={"hash_memory_kib", "hash_time_cost"})
    defaults = _policy_settings().model_dump(exclude={"hash_memory_kib", "hash_time_cost"})
    assert {k: v for k, v in policy.items() if k != "allow_insecure_hash_parameters"} == {
        k: v for k, v in defaults.items() if k != "allow_insecure_hash_parameters"
    }
    service = PasswordService(_policy_settings())
    try:
        accepted = [pw for pw in passwords if (await service.check_new_password(pw)).ok]
    finally:
        await service.aclose()
    assert not accepted, accepted[:20]


async def test_a_sample_is_rejected_through_registration(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    passwords = common_passwords()
    sample = passwords[:: len(passwords) // SAMPLE][:SAMPLE]  # spread over the whole list
    for password in sample:
        email = unique_email()
        async with fresh_client(app) as one_off:  # per-IP registration limits are not tested here
            response = await register(one_off, email, password)
        assert_problem(response, 422, "password_rejected")
        assert password not in response.text  # the password is never echoed
        assert not mails_to(settings, email)  # no account, no mail
    # The same address registers fine with a strong password: nothing was half-created.
    email = unique_email()
    assert (await register(client, email, sample[0])).status_code == 422
    assert (await register(client, email, PASSWORD)).status_code == 202
    await verify_email(client, settings, email)


@pytest.mark.parametrize(
    ("email", "display_name", "password"),
    [
        ("jennifer.lawrence@example.com", "Jen", "jennifer.lawrence-2024!"),
        ("maximilian@example.com", "Max", "Maximilian Maximilian"),
        ("someone@bastion-identity.dev", "Some One", "bastion-identity-2024"),
        ("x@example.com", "Bartholomew Featherstonehaugh", "featherstonehaugh1987"),
    ],
)
async def test_passwords_built_from_the_users_own_details_are_rejected(
    client: httpx.AsyncClient, email: str, display_name: str, password: str
) -> None:
    response = await register(client, email, password, display_name)
    assert_problem(response, 422, "password_rejected")


async def test_the_same_checks_guard_password_change_and_reset(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """A weak password cannot come in through the other doors either."""
    service = PasswordService(_policy_settings())
    try:
        decision = await service.check_new_password("password1234", user=UserInfo())
    finally:
        await service.aclose()
    assert not decision.ok
    email = unique_email()
    await register(client, email)
    await verify_email(client, settings, email)
    login = await client.post("/v1/sessions", json={"email": email, "password": PASSWORD})
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    response = await client.post(
        "/v1/account/password",
        json={"current_password": PASSWORD, "new_password": "password1234"},
        headers=headers,
    )
    assert_problem(response, 422, "password_rejected")


@pytest.mark.parametrize("size", [1025, 4096, 500_000])
async def test_oversized_passwords_are_refused(client: httpx.AsyncClient, size: int) -> None:
    """Past the byte cap a password is refused before hashing (a long hash input per request
    is a cheap DoS), with an ordinary 4xx and never an echo of the input."""
    huge = ("correct horse battery staple " * (size // 29 + 1))[:size]
    register_body = {"email": unique_email(), "password": huge, "display_name": "A B"}
    response = await client.post("/v1/accounts", json=register_body)
    assert response.status_code == 422, response.text
    assert huge not in response.text
    response = await client.post("/v1/sessions", json={"email": unique_email(), "password": huge})
    assert response.status_code in {401, 422}, response.text
    assert huge not in response.text
