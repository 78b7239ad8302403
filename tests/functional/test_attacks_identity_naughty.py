"""Attack tests: naughty strings in every text field of every identity endpoint.

Each string of the Big List of Naughty Strings (``../shared/conformance/payloads/blns.json``),
plus a few of our own that break naive code (NUL, which PostgreSQL text refuses; a lone
surrogate, which cannot be encoded to UTF-8; very long values), goes into one field at a time
while every other field is valid, so the value reaches as deep as it can. No answer may be a
5xx or carry a stack trace. Runs on SQLite and PostgreSQL: they fail differently. Each string
reaches each field on one of them, our own strings on both (see :func:`strings_for`).

Fields that need state get it: the login password goes against a real account (the frozen
clock is moved past any backoff first, so the password is really checked), the reset password
comes with a fresh valid reset token, authenticated fields with a live session.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from tests.functional.identity_helpers import (
    DISPLAY_NAME,
    PASSWORD,
    WRONG_PASSWORD,
    Account,
    Login,
    client_for,
    client_ip,
    create_account,
    identity_settings,
    login,
    mails_to,
    running_app,
    setup_admin,
    token_in,
    unique_email,
    wait_for_mail,
)

from bastion.clock import FrozenClock
from bastion.config import Settings

BLNS = Path(__file__).parents[2] / ".." / "shared" / "conformance" / "payloads" / "blns.json"
#: Ours: what BLNS lacks and breaks real code.
EXTRA = [
    "\x00",
    "a\x00b@example.com",
    "\ud800",  # a lone surrogate: valid JSON (as an escape), not encodable as UTF-8
    "\udfff\ud800",
    "x" * 10_000,
    "é" * 3_000,
    "\U0001f916" * 2_000,
    "\u202e\u0000\ufeff",
    "a@b",
    "@",
    "a" * 64 + "@" + "b" * 255 + ".com",
    "${jndi:ldap://127.0.0.1/a}",
    "%00%0d%0aSet-Cookie: a=b",
    "__proto__",
]
#: Valid passwords for the bodies' other fields: strong, and quick for the strength checker to
#: score (~1 ms, against ~5 ms for the helpers' passphrases, paid by thousands of requests here).
QUICK_PASSWORD = "qzx-vkw-jpf-hdb"
OTHER_QUICK_PASSWORD = "wbv-kqj-xzt-pfm"
STACK_MARKERS = (
    "Traceback",
    'File "',
    "site-packages",
    "sqlalchemy",
    "asyncpg",
    "aiosqlite",
    "sqlite_inline",
    "sqlite3",
    "psycopg",
    "IntegrityError",
    "UnicodeEncodeError",
)


def naughty_strings() -> list[str]:
    if not BLNS.exists():
        reason = f"{BLNS.resolve()} is missing (expected ../shared/conformance)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    values = json.loads(BLNS.read_text(encoding="utf-8"))
    return [*dict.fromkeys([*values, *EXTRA])]


@dataclass
class Harness:
    app: FastAPI
    settings: Settings
    clock: FrozenClock
    account: Account
    admin: Account
    ips: int = 0
    password: str = PASSWORD
    reset_token: str | None = None
    _session: Login | None = field(default=None, repr=False)
    _admin_session: Login | None = field(default=None, repr=False)

    def client(self, *, https: bool = False) -> httpx.AsyncClient:
        self.ips += 1  # a fresh address each time: per-IP throttling must not hide a crash
        return client_for(self.app, client_ip(self.ips), https=https)

    async def post(self, path: str, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
        # json.dumps escapes lone surrogates (\\ud800): valid JSON that httpx could not send.
        content = json.dumps(body).encode()
        headers = {"content-type": "application/json", **kwargs.pop("headers", {})}
        async with self.client() as client:
            return await client.post(path, content=content, headers=headers, **kwargs)

    async def session(self) -> Login:
        if self._session is None:
            async with self.client() as client:
                self._session = await login(
                    client, Account(self.account.email, self.password, DISPLAY_NAME)
                )
        return self._session

    async def admin_session(self) -> Login:
        if self._admin_session is None:
            async with self.client() as client:
                self._admin_session = await login(client, self.admin)
        return self._admin_session

    async def authed(
        self, method: str, path: str, body: dict[str, Any] | None = None, **kwargs: Any
    ) -> httpx.Response:
        session = await self.session()
        headers = {**session.headers, "content-type": "application/json"}
        content = json.dumps(body).encode() if body is not None else None
        async with self.client() as client:
            response = await client.request(
                method, path, content=content, headers=headers, **kwargs
            )
        if response.status_code == 401:
            self._session = None  # e.g. the password changed: log in again next time
        return response


Send = Callable[[Harness, str], Awaitable[httpx.Response]]


def _password_rejected(response: httpx.Response) -> bool:
    if response.status_code != 422:
        return False
    try:
        return bool(response.json().get("code") == "password_rejected")
    except ValueError:
        return False


def _body(base: dict[str, Any], name: str, value: str) -> dict[str, Any]:
    return {**base, name: value}


async def _setup(h: Harness, name: str, value: str) -> httpx.Response:
    token = await h.app.state.services.setup_tokens.issue()
    base = {
        "setup_token": token,
        "email": unique_email("admin"),
        "password": QUICK_PASSWORD,
        "display_name": "Admin",
    }
    return await h.post("/v1/setup", _body(base, name, value))


async def _register(h: Harness, name: str, value: str) -> httpx.Response:
    base = {"email": unique_email(), "password": QUICK_PASSWORD, "display_name": DISPLAY_NAME}
    return await h.post("/v1/accounts", _body(base, name, value))


async def _login(h: Harness, name: str, value: str) -> httpx.Response:
    if name == "password":
        h.clock.advance(timedelta(hours=1))  # past any backoff: the password gets checked
        base = {"email": h.account.email, "password": WRONG_PASSWORD}
        h._session = h._admin_session = None  # tokens expired with the hour
    else:
        base = {"email": h.account.email, "password": h.password, "transport": "bearer"}
        if name == "email":
            base["password"] = WRONG_PASSWORD
    return await h.post("/v1/sessions", _body(base, name, value))


async def _reset_token(h: Harness) -> str:
    """A valid reset token: the last one while it is unused, else a fresh one by mail."""
    if h.reset_token is None:
        h.clock.advance(timedelta(hours=1))  # past any per-account throttling of resets
        h._session = h._admin_session = None
        before = len(mails_to(h.settings, h.account.email, "password_reset"))
        await h.post("/v1/password/forgot", {"email": h.account.email})
        mail = await wait_for_mail(h.settings, h.account.email, "password_reset", after=before)
        h.reset_token = token_in(mail)
    return h.reset_token


async def _reset(h: Harness, name: str, value: str) -> httpx.Response:
    if name == "new_password":
        # A rejected password leaves the token usable (the service's contract, tested in
        # test_identity_flows), so one token serves every value the policy refuses; any other
        # answer, the success included, takes a new token for the next value. Each value still
        # goes with a valid token, so it reaches the password policy.
        base = {"token": await _reset_token(h), "new_password": OTHER_QUICK_PASSWORD}
        response = await h.post("/v1/password/reset", _body(base, name, value))
        if not _password_rejected(response):
            h.reset_token = None
        if response.status_code == 204:
            h.password = value
        return response
    return await h.post(
        "/v1/password/reset", {"token": value, "new_password": OTHER_QUICK_PASSWORD}
    )


async def _change(h: Harness, name: str, value: str) -> httpx.Response:
    base = {"current_password": h.password, "new_password": OTHER_QUICK_PASSWORD}
    if name == "current_password":
        h.clock.advance(timedelta(minutes=1))
    response = await h.authed("POST", "/v1/account/password", _body(base, name, value))
    if name == "new_password" and response.status_code == 204:
        h.password = value
    return response


async def _header(h: Harness, value: str, make: Callable[[bytes], dict[str, bytes]]) -> Any:
    raw = value.encode("utf-8", "surrogatepass")
    if any(c in raw for c in b"\r\n\x00"):
        return None  # not representable in an HTTP/1.1 header
    async with h.client(https=True) as client:
        return await client.get("/v1/account", headers=make(raw))


async def _refresh_cookie(h: Harness, value: str) -> Any:
    raw = value.encode("utf-8", "surrogatepass")
    if any(c in raw for c in b"\r\n\x00;"):
        return None
    headers = {
        "Cookie": b"__Secure-refresh=" + raw + b"; __Host-csrf=" + raw,
        "X-CSRF-Token": raw,
        "content-type": b"application/json",
    }
    async with h.client(https=True) as client:
        return await client.post("/v1/sessions/refresh", content=b"{}", headers=headers)


async def _cookie_unsafe(h: Harness, value: str) -> Any:
    raw = value.encode("utf-8", "surrogatepass")
    if any(c in raw for c in b"\r\n\x00"):
        return None
    async with h.client(https=True) as client:
        response = await client.post(
            "/v1/sessions",
            json={"email": h.account.email, "password": h.password, "transport": "cookie"},
        )
        if response.status_code != 200:
            return response
        return await client.patch(
            "/v1/account", json={"display_name": "x"}, headers={"X-CSRF-Token": raw}
        )


def _query_safe(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


async def _delete_session(h: Harness, value: str) -> Any:
    if not _query_safe(value):
        return None
    return await h.authed("DELETE", f"/v1/sessions/{quote(value, safe='')}")


async def _events(h: Harness, value: str) -> Any:
    if not _query_safe(value):
        return None
    return await h.authed("GET", "/v1/account/events", params={"cursor": value})


async def _change_email(h: Harness, name: str, value: str) -> httpx.Response:
    base = {"new_email": unique_email("new"), "current_password": h.password}
    if name == "current_password":
        h.clock.advance(timedelta(minutes=1))
    return await h.authed("POST", "/v1/account/email", _body(base, name, value))


async def _admin_user(h: Harness, value: str) -> Any:
    """A naughty user id in each admin path (as the administrator, so the id is looked up)."""
    if not _query_safe(value):
        return None
    session = await h.admin_session()
    user = quote(value, safe="")
    worst = None
    async with h.client() as client:
        for method, path in (
            ("GET", f"/v1/admin/users/{user}"),
            ("POST", f"/v1/admin/users/{user}/unlock"),
            ("POST", f"/v1/admin/users/{user}/revoke-sessions"),
        ):
            response = await client.request(method, path, headers=session.headers)
            if worst is None or response.status_code > worst.status_code:
                worst = response
    return worst


async def _admin_search(h: Harness, value: str) -> Any:
    if not _query_safe(value):
        return None
    session = await h.admin_session()
    async with h.client() as client:
        return await client.get("/v1/admin/users", params={"q": value}, headers=session.headers)


SCENARIOS: dict[str, Send] = {
    "setup.setup_token": lambda h, v: _setup(h, "setup_token", v),
    "setup.email": lambda h, v: _setup(h, "email", v),
    "setup.password": lambda h, v: _setup(h, "password", v),
    "setup.display_name": lambda h, v: _setup(h, "display_name", v),
    "accounts.email": lambda h, v: _register(h, "email", v),
    "accounts.password": lambda h, v: _register(h, "password", v),
    "accounts.display_name": lambda h, v: _register(h, "display_name", v),
    "verify_email.token": lambda h, v: h.post("/v1/accounts/verify-email", {"token": v}),
    "sessions.email": lambda h, v: _login(h, "email", v),
    "sessions.password": lambda h, v: _login(h, "password", v),
    "sessions.transport": lambda h, v: _login(h, "transport", v),
    "refresh.refresh_token": lambda h, v: h.post("/v1/sessions/refresh", {"refresh_token": v}),
    "forgot.email": lambda h, v: h.post("/v1/password/forgot", {"email": v}),
    "reset.token": lambda h, v: _reset(h, "token", v),
    "reset.new_password": lambda h, v: _reset(h, "new_password", v),
    "account_password.current_password": lambda h, v: _change(h, "current_password", v),
    "account_password.new_password": lambda h, v: _change(h, "new_password", v),
    "account.display_name": lambda h, v: h.authed("PATCH", "/v1/account", {"display_name": v}),
    "account_email.new_email": lambda h, v: _change_email(h, "new_email", v),
    "account_email.current_password": lambda h, v: _change_email(h, "current_password", v),
    "sessions.{id}": _delete_session,
    "events.cursor": _events,
    "header.authorization": lambda h, v: _header(h, v, lambda r: {"Authorization": b"Bearer " + r}),
    "cookie.access": lambda h, v: _header(h, v, lambda r: {"Cookie": b"__Host-access=" + r}),
    "header.csrf": _cookie_unsafe,
    "cookie.refresh": _refresh_cookie,
    "admin.users.q": _admin_search,
    "admin.users.{id}": _admin_user,
}


#: Every string reaches every field on one of the two databases: SQLite takes BLNS's even-indexed
#: strings, PostgreSQL the odd ones, and both take our own (:data:`EXTRA`: NUL, lone surrogates,
#: very long values, the strings known to break one database and not the other). Fields whose
#: value is a password (only its Argon2 hash is ever stored, so the database never sees the value;
#: each new password costs a zxcvbn scoring) run the whole list, split the same way, through
#: registration (:data:`FULL_PASSWORD_SCENARIO`), and a sample in the other flows: our own strings
#: and every :data:`PASSWORD_SAMPLE_STEP`-th of BLNS, which reaches both the policy's refusals and
#: the flows past an accepted password. (CI time: the whole list on both databases cost about a
#: fifth of the suite's CPU on a slow host.)
PASSWORD_SCENARIOS = frozenset(
    {
        "setup.password",
        "accounts.password",
        "sessions.password",
        "reset.new_password",
        "account_password.current_password",
        "account_password.new_password",
        "account_email.current_password",
    }
)
FULL_PASSWORD_SCENARIO = "accounts.password"
PASSWORD_SAMPLE_STEP = 8


def strings_for(scenario: str, database_url: str) -> list[str]:
    values = naughty_strings()
    if scenario in PASSWORD_SCENARIOS and scenario != FULL_PASSWORD_SCENARIO:
        keep = set(values[::PASSWORD_SAMPLE_STEP])
    else:
        keep = set(values[0 if database_url.startswith("sqlite") else 1 :: 2])
    keep |= set(EXTRA)
    return [value for value in values if value in keep]


def test_every_string_reaches_every_field_on_one_database() -> None:
    assert PASSWORD_SCENARIOS.issubset(SCENARIOS)
    everything = naughty_strings()
    sqlite, postgres = "sqlite:///x.db", "postgresql+asyncpg://db"
    for scenario in ("accounts.email", FULL_PASSWORD_SCENARIO):
        on_sqlite, on_postgres = strings_for(scenario, sqlite), strings_for(scenario, postgres)
        assert set(on_sqlite) | set(on_postgres) == set(everything)
        assert set(EXTRA) <= set(on_sqlite) & set(on_postgres)
        assert len(on_sqlite) < len(everything)
    sample = strings_for("reset.new_password", postgres)
    assert set(EXTRA) <= set(sample)
    assert len(everything) // PASSWORD_SAMPLE_STEP <= len(sample) < len(everything) // 2


@pytest.fixture
async def harness(tmp_path: Path, database_url: str) -> AsyncIterator[Harness]:
    clock = FrozenClock(datetime.now(UTC))
    # One user sends every value (the admin scenarios three requests each): more than the
    # general per-user budget allows in a minute. Throttling is not under test here.
    budget = {"policies": {"api-user": {"limit": 100_000}}}
    settings = identity_settings(tmp_path, database_url=database_url, ratelimit=budget)
    async with running_app(settings, clock=clock) as app:
        async with client_for(app, "192.0.2.10") as client:
            admin = await setup_admin(app, client)
            account = await create_account(client, settings)
        yield Harness(app, settings, clock, account, admin)


@pytest.mark.slow
@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_naughty_strings_never_cause_a_5xx(harness: Harness, scenario: str) -> None:
    send = SCENARIOS[scenario]
    failures = []
    statuses: dict[int, int] = {}
    for value in strings_for(scenario, harness.settings.effective_database_url):
        response = await send(harness, value)
        if response is None:
            continue
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        leaked = [m for m in STACK_MARKERS if m in response.text and m not in value]
        if response.status_code >= 500 or leaked:
            failures.append((value[:80], response.status_code, leaked, response.text[:300]))
    assert not failures, f"{len(failures)} failures, statuses {statuses}: {failures[:5]}"
    # The values reached the field: throttling did not answer for the code under test.
    sent = sum(statuses.values())
    assert statuses.get(429, 0) + statuses.get(503, 0) <= sent // 20, statuses
