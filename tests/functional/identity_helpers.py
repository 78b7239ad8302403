"""Shared flows for the identity attack tests: the real app with its file mailer, accounts
registered and verified through the HTTP API, logins, mail tokens, forged JWTs, audit rows.

Everything goes through the public HTTP API except three things a test legitimately owns: the
setup token (printed on a terminal in production; ``services.setup_tokens.issue()`` here), the
mails (read from the file mailer's folder, as a user reads their inbox) and, for the JWT
attacks, the server's signing key (the worst case: an attacker who can sign still must not get a
token with a wrong audience, issuer or lifetime accepted).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import re
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select
from tests.conftest import migrated

from bastion.app import create_app
from bastion.audit.models import audit_events
from bastion.clock import Clock, SystemClock
from bastion.config import Settings
from bastion.http.problems import PROBLEM_CONTENT_TYPE
from bastion.identity.mfa import totp
from bastion.identity.passwords import PasswordSettings
from bastion.services import build_services

TEST_SECRET_KEY = "test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"

#: Argon2 at its cheapest, so flows run in milliseconds. Tests about hashing cost (timing)
#: use ``PasswordSettings()`` instead: the defaults are the point there.
FAST_PASSWORDS = PasswordSettings(
    hash_memory_kib=1024, hash_time_cost=1, allow_insecure_hash_parameters=True
)
#: Strong under the default policy (zxcvbn 4, 12+ characters, unrelated to the test names).
PASSWORD = "Vivid-otter quarry lantern 42"
OTHER_PASSWORD = "plum tractor velvet oboe 917"
WRONG_PASSWORD = "unicorn meadow saxophone 53"
DISPLAY_NAME = "Robin Tester"

#: Headers that legitimately differ between two otherwise identical answers: the request id,
#: the date, and the RateLimit field's remaining quota and reset (RateLimit-Policy is kept).
VARYING_HEADERS = frozenset({"x-request-id", "date", "ratelimit"})
#: How long a TOTP code made on a running clock must stay within the accepted drift.
_TOTP_MARGIN = timedelta(seconds=5)
_TOKEN_LINE = re.compile(r"^Token: (\S+)\s*$", re.MULTILINE)


# -- the app ---------------------------------------------------------------------------------
def identity_settings(
    tmp_path: Path,
    *,
    database_url: str | None = None,
    passwords: PasswordSettings = FAST_PASSWORDS,
    **overrides: Any,
) -> Settings:
    """Test settings with the file mailer writing into ``tmp_path / "mail"``."""
    values: dict[str, Any] = {
        "env": "test",
        "data_dir": tmp_path,
        "secret_key": TEST_SECRET_KEY,
        "allowed_hosts": ["testserver", "127.0.0.1", "localhost"],
        "mailer": "file",
        "passwords": passwords,
    }
    if database_url is not None:
        values["database_url"] = database_url
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def running_app(settings: Settings, *, clock: Clock | None = None) -> AsyncIterator[FastAPI]:
    """The real app, migrated and started (lifespan), with an optional injected clock."""
    await migrated(settings.effective_database_url)
    services = build_services(settings, clock=clock) if clock is not None else None
    app = create_app(settings, services=services)
    async with app.router.lifespan_context(app):
        yield app


def client_ip(n: int) -> str:
    """The ``n``-th address of 198.18.0.0/15 (RFC 2544 benchmarking): many distinct clients."""
    return f"198.{18 + n // 65536}.{n // 256 % 256}.{n % 256}"


def client_for(app: FastAPI, ip: str = "203.0.113.7", *, https: bool = False) -> httpx.AsyncClient:
    """A client whose TCP peer address is ``ip``. ``https`` for ``Secure`` cookies."""
    transport = httpx.ASGITransport(app=app, client=(ip, 50000))
    base_url = "https://testserver" if https else "http://testserver"
    return httpx.AsyncClient(transport=transport, base_url=base_url)


_clients = itertools.count(60_000)


def fresh_client(app: FastAPI, *, https: bool = False) -> httpx.AsyncClient:
    """A client from an address no other request used: for bulk setup (many registrations)
    that per-IP limits (registration: 5 an hour) would otherwise refuse."""
    return client_for(app, client_ip(next(_clients)), https=https)


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{secrets.token_hex(4)}@example.com"


# -- answers ---------------------------------------------------------------------------------
def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_CONTENT_TYPE), response.headers
    body = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    return dict(body)


def comparable(response: httpx.Response) -> tuple[int, Any, dict[str, str]]:
    """Status, body (without ``request_id``) and headers (without request id and date): what
    must be identical between two answers that may not tell accounts apart."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.content
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k != "request_id"}
    headers = {k: v for k, v in response.headers.items() if k not in VARYING_HEADERS}
    return response.status_code, body, headers


def assert_same_answer(first: httpx.Response, second: httpx.Response) -> None:
    a, b = comparable(first), comparable(second)
    assert a[0] == b[0], (a, b)
    assert a[1] == b[1], (a, b)
    assert a[2] == b[2], (a, b)


# -- mail ------------------------------------------------------------------------------------
def mail_dir(settings: Settings) -> Path:
    return settings.data_dir / "mail"


#: Mail files never change once written: parse each one once, and read its modification time
#: once (tests read hundreds, and poll the folder while waiting for one: re-reading every file
#: on every poll made a long test quadratic). Keyed by the file's path text.
_PARSED_MAILS: dict[str, dict[str, Any]] = {}
_MAIL_ORDER: dict[str, tuple[int, str]] = {}


def _parse_mail(path: str) -> dict[str, Any] | None:
    mail = _PARSED_MAILS.get(path)
    if mail is None:
        try:
            mail = json.loads(Path(path).read_bytes())
        except ValueError:
            return None  # still being written: read it on the next poll
        _PARSED_MAILS[path] = mail
    return mail


def _mail_order(entry: os.DirEntry[str]) -> tuple[int, str]:
    key = _MAIL_ORDER.get(entry.path)
    if key is None:
        key = _MAIL_ORDER[entry.path] = (entry.stat().st_mtime_ns, entry.name)
    return key


def read_mails(settings: Settings) -> list[dict[str, Any]]:
    """Every mail the file mailer wrote, oldest first."""
    try:
        with os.scandir(mail_dir(settings)) as entries:
            files = [e for e in entries if e.name.endswith(".json") and e.is_file()]
    except (FileNotFoundError, NotADirectoryError):
        return []
    files.sort(key=_mail_order)
    return [mail for e in files if (mail := _parse_mail(e.path)) is not None]


def _recipient(mail: dict[str, Any]) -> str:
    to = mail.get("to")
    return to[0] if isinstance(to, list) else str(to)


def mails_to(settings: Settings, email: str, kind: str | None = None) -> list[dict[str, Any]]:
    target = email.casefold()
    return [
        m
        for m in read_mails(settings)
        if _recipient(m).casefold() == target and (kind is None or m.get("kind") == kind)
    ]


def token_in(mail: dict[str, Any]) -> str:
    match = _TOKEN_LINE.search(str(mail.get("text", "")))
    assert match, f"no 'Token:' line in mail: {mail}"
    return match.group(1)


async def wait_for_mail(
    settings: Settings, email: str, kind: str, *, after: int = 0, within: float = 15.0
) -> dict[str, Any]:
    """The first mail of ``kind`` to ``email`` beyond the first ``after`` ones (the outbox may
    deliver asynchronously; on a machine loaded by the parallel suite delivery was seen to take
    over 5 s, so the wait is generous: it costs nothing when the mail is there)."""
    deadline = time.monotonic() + within
    while True:
        found = mails_to(settings, email, kind)
        if len(found) > after:
            return found[after]
        if time.monotonic() > deadline:
            kinds = Counter((_recipient(m), m.get("kind")) for m in read_mails(settings))
            raise AssertionError(
                f"no {kind} mail to {email} beyond the first {after} within {within} s; "
                f"mails by recipient and kind: {dict(kinds)}"
            )
        await asyncio.sleep(0.02)


# -- flows -----------------------------------------------------------------------------------
@dataclass
class Login:
    """A logged-in session (bearer transport)."""

    access_token: str
    refresh_token: str
    session_id: str
    body: dict[str, Any] = field(repr=False)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


@dataclass
class Account:
    email: str
    password: str
    display_name: str = DISPLAY_NAME
    #: Set when the account enrolled an authenticator app (administrators: the MFA policy).
    totp_secret: str | None = field(default=None, repr=False)
    recovery_codes: list[str] = field(default_factory=list, repr=False)
    #: The app's clock (TOTP codes follow it) and the last time step used (never reused).
    clock: Clock | None = field(default=None, repr=False)
    last_step: int = -1

    def next_second_factor(self) -> tuple[str, str]:
        """``(method, code)`` for a login challenge or a step-up: the next unused TOTP step
        within the accepted drift (a frozen clock offers three), else a recovery code."""
        assert self.totp_secret is not None, "no second factor"
        assert self.clock is not None, "no clock"
        now = self.clock.now()
        current = totp.time_step(now)
        oldest = current - totp.DRIFT_STEPS
        if type(self.clock) is SystemClock:
            # A running clock: not a step that leaves the accepted drift before the server
            # checks it (the oldest one, a second before a step boundary, failed CI once).
            oldest = totp.time_step(now + _TOTP_MARGIN) - totp.DRIFT_STEPS
        step = max(self.last_step + 1, oldest)
        if step <= current + totp.DRIFT_STEPS:
            self.last_step = step
            return "otp", totp.code_at(self.totp_secret, step)
        assert self.recovery_codes, "out of TOTP steps and recovery codes"
        return "recovery", self.recovery_codes.pop()


async def register(
    client: httpx.AsyncClient,
    email: str,
    password: str = PASSWORD,
    display_name: str = DISPLAY_NAME,
    **extra: Any,
) -> httpx.Response:
    return await client.post(
        "/v1/accounts",
        json={"email": email, "password": password, "display_name": display_name, **extra},
    )


async def verify_email(client: httpx.AsyncClient, settings: Settings, email: str) -> None:
    token = token_in(await wait_for_mail(settings, email, "verify_email"))
    response = await client.post("/v1/accounts/verify-email", json={"token": token})
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "verified"}


async def create_account(
    client: httpx.AsyncClient,
    settings: Settings,
    email: str | None = None,
    password: str = PASSWORD,
    display_name: str = DISPLAY_NAME,
) -> Account:
    """Register and verify an account through the API."""
    email = email or unique_email()
    response = await register(client, email, password, display_name)
    assert response.status_code == 202, response.text
    await verify_email(client, settings, email)
    return Account(email, password, display_name)


async def login_response(
    client: httpx.AsyncClient, email: str, password: str, transport: str | None = None
) -> httpx.Response:
    body: dict[str, Any] = {"email": email, "password": password}
    if transport is not None:
        body["transport"] = transport
    return await client.post("/v1/sessions", json=body)


async def login(client: httpx.AsyncClient, account: Account) -> Login:
    """Log in; an account with a second factor completes the challenge with it."""
    response = await login_response(client, account.email, account.password)
    if response.status_code == 202 and account.totp_secret is not None:
        response = await complete_mfa(client, account, response.json()["challenge_token"])
    assert response.status_code == 200, response.text
    return as_login(response)


async def complete_mfa(
    client: httpx.AsyncClient, account: Account, challenge_token: str
) -> httpx.Response:
    method, code = account.next_second_factor()
    return await client.post(
        "/v1/sessions/mfa/complete",
        json={"challenge_token": challenge_token, "method": method, "code": code},
    )


async def step_up(client: httpx.AsyncClient, session: Login, account: Account) -> None:
    """Re-authenticate ``session`` (for sensitive operations after the step-up window)."""
    if account.totp_secret is not None:
        method, code = account.next_second_factor()
        body: dict[str, Any] = {"method": method, "code": code}
    else:
        body = {"password": account.password}
    response = await client.post("/v1/sessions/current/step-up", json=body, headers=session.headers)
    assert response.status_code == 200, response.text
    session.access_token = response.json()["access_token"]


async def enroll_totp(app: FastAPI, client: httpx.AsyncClient, account: Account) -> Login:
    """Enroll an authenticator app through the API; returns the (now aal2) session."""
    session = await login(client, account)
    started = await client.post("/v1/account/mfa/totp", headers=session.headers)
    assert started.status_code == 201, started.text
    account.totp_secret = started.json()["secret"]
    account.clock = app.state.services.clock
    _, code = account.next_second_factor()
    activated = await client.post(
        "/v1/account/mfa/totp/activate", json={"code": code}, headers=session.headers
    )
    assert activated.status_code == 200, activated.text
    account.recovery_codes = list(activated.json()["recovery_codes"] or [])
    return session


def as_login(response: httpx.Response) -> Login:
    body = response.json()
    assert body["token_type"] == "Bearer", body
    return Login(body["access_token"], body["refresh_token"], body["session_id"], body)


async def refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post("/v1/sessions/refresh", json={"refresh_token": refresh_token})


async def setup_admin(
    app: FastAPI, client: httpx.AsyncClient, email: str | None = None, *, enroll_mfa: bool = True
) -> Account:
    """The first administrator, created with a setup token as an operator would. With
    ``enroll_mfa`` (the default) it then enrolls an authenticator app, as the MFA policy for
    administrators demands before any other admin operation; :func:`login` completes the
    second factor, and :func:`step_up` re-authenticates a session."""
    email = email or unique_email("admin")
    token = await app.state.services.setup_tokens.issue()
    response = await client.post(
        "/v1/setup",
        json={
            "setup_token": token,
            "email": email,
            "password": PASSWORD,
            "display_name": "First Admin",
        },
    )
    assert response.status_code == 201, response.text
    assert response.json()["is_admin"] is True
    account = Account(email, PASSWORD, "First Admin")
    if enroll_mfa:
        await enroll_totp(app, client, account)
    return account


async def eventually(
    check: Callable[[], Awaitable[bool]], *, within: float, interval: float = 0.05
) -> float:
    """Poll ``check`` until it is true; return the seconds it took. Fails after ``within`` s."""
    start = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - start
        elapsed = time.monotonic() - start
        if elapsed > within:
            raise AssertionError(f"still false after {elapsed:.1f} s")
        await asyncio.sleep(interval)


# -- audit -----------------------------------------------------------------------------------
async def audit_rows(app: FastAPI, event_type: str) -> list[dict[str, Any]]:
    """Audit rows of ``event_type``, after the recorder has written what it queued."""
    services = app.state.services
    await asyncio.wait_for(services.audit._queue.join(), timeout=10)
    async with services.database.engine.connect() as connection:
        result = await connection.execute(
            select(audit_events).where(audit_events.c.type == event_type)
        )
        return [dict(row._mapping) for row in result]


# -- JWTs ------------------------------------------------------------------------------------
def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    header, payload, signature = token.split(".")
    return json.loads(unb64url(header)), json.loads(unb64url(payload)), signature


def encode_segment(value: dict[str, Any] | bytes) -> str:
    return b64url(value if isinstance(value, bytes) else json.dumps(value).encode())
