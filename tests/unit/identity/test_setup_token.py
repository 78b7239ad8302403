"""Setup tokens: random, hashed at rest, single use (even under concurrency), expiring."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import select

from bastion.audit.events import EventType, Outcome
from bastion.audit.recorder import QueueAuditRecorder
from bastion.audit.sinks import InMemorySink
from bastion.clock import FrozenClock
from bastion.errors import BastionError
from bastion.identity.errors import IdentityError, InvalidSetupToken
from bastion.identity.models import setup_tokens
from bastion.identity.setup_token import TOKEN_PREFIX, SetupTokenService
from bastion.storage import Database

TTL = 3600


class Audit:
    """A recorder that writes straight to memory (synchronous for assertions)."""

    def __init__(self) -> None:
        self.sink = InMemorySink()
        self.recorder = QueueAuditRecorder([self.sink], queue_size=1000, batch_size=100)

    async def events(self) -> list[tuple[EventType, Outcome, str | None, str | None]]:
        await self.recorder.aclose()
        return [(e.type, e.outcome, e.reason, e.subject) for e in self.sink.events]


@pytest.fixture
def audit() -> Audit:
    return Audit()


@pytest.fixture
def service(database: Database, clock: FrozenClock, audit: Audit) -> SetupTokenService:
    return SetupTokenService(database, clock=clock, ttl_seconds=TTL, audit=audit.recorder)


async def test_issue_returns_a_random_prefixed_token(service: SetupTokenService) -> None:
    first, second = await service.issue(), await service.issue()
    assert first.startswith(TOKEN_PREFIX)
    assert len(first) == len(TOKEN_PREFIX) + 43  # 32 random bytes, base64url
    assert first != second


async def test_only_the_hash_is_stored(service: SetupTokenService, database: Database) -> None:
    token = await service.issue()
    async with database.session() as session:
        row = (await session.execute(select(setup_tokens))).mappings().one()
    assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in repr(dict(row))


async def test_a_token_is_single_use(service: SetupTokenService, audit: Audit) -> None:
    token = await service.issue()
    await service.consume(token)
    with pytest.raises(InvalidSetupToken):
        await service.consume(token)
    events = await audit.events()
    assert [(t, o, r) for t, o, r, _ in events] == [
        (EventType.SYSTEM_SETUP_TOKEN_ISSUED, Outcome.SUCCESS, None),
        (EventType.SYSTEM_SETUP_TOKEN_CONSUMED, Outcome.SUCCESS, None),
        (EventType.SYSTEM_SETUP_TOKEN_REJECTED, Outcome.FAILURE, "already_used"),
    ]
    # One token followed through the trail by its id.
    assert len({subject for *_, subject in events}) == 1
    assert events[0][3] is not None


async def test_a_token_expires(
    service: SetupTokenService, clock: FrozenClock, audit: Audit
) -> None:
    token = await service.issue()
    clock.advance(timedelta(seconds=TTL))
    with pytest.raises(InvalidSetupToken):
        await service.consume(token)
    assert (await audit.events())[-1][2] == "expired"


async def test_a_token_works_until_it_expires(
    service: SetupTokenService, clock: FrozenClock
) -> None:
    token = await service.issue()
    clock.advance(timedelta(seconds=TTL - 1))
    await service.consume(token)


async def test_reissue_invalidates_the_previous_token(
    service: SetupTokenService, audit: Audit
) -> None:
    old = await service.issue()
    new = await service.issue()
    with pytest.raises(InvalidSetupToken):
        await service.consume(old)
    await service.consume(new)
    reasons = [
        r for t, _, r, _ in await audit.events() if t is EventType.SYSTEM_SETUP_TOKEN_REJECTED
    ]
    assert reasons == ["expired"]


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (TOKEN_PREFIX + "A" * 43, "unknown"),
        ("not-a-setup-token", "malformed"),
        (TOKEN_PREFIX + "A" * 10_000, "malformed"),
        ("", "malformed"),
    ],
)
async def test_every_bad_token_is_the_same_opaque_error(
    service: SetupTokenService, audit: Audit, token: str, reason: str
) -> None:
    await service.issue()
    with pytest.raises(InvalidSetupToken) as caught:
        await service.consume(token)
    error = caught.value
    assert isinstance(error, IdentityError)
    assert isinstance(error, BastionError)
    assert (error.code, error.status) == ("setup_token_invalid", 400)
    assert str(error) == InvalidSetupToken.title  # nothing about why
    assert (await audit.events())[-1][:3] == (
        EventType.SYSTEM_SETUP_TOKEN_REJECTED,
        Outcome.FAILURE,
        reason,
    )


async def test_concurrent_consumes_succeed_exactly_once(service: SetupTokenService) -> None:
    token = await service.issue()
    results = await asyncio.gather(
        *(service.consume(token) for _ in range(10)), return_exceptions=True
    )
    assert results.count(None) == 1
    assert all(isinstance(r, InvalidSetupToken) for r in results if r is not None)


async def test_setup_completes_when_a_token_is_consumed(service: SetupTokenService) -> None:
    assert not await service.is_setup_complete()
    token = await service.ensure_token_for_first_start()
    assert token is not None
    assert not await service.is_setup_complete()
    await service.consume(token)
    assert await service.is_setup_complete()
    assert await service.ensure_token_for_first_start() is None


async def test_first_start_token_replaces_an_unused_one(service: SetupTokenService) -> None:
    first = await service.ensure_token_for_first_start()
    second = await service.ensure_token_for_first_start()
    assert first is not None
    assert second is not None
    assert first != second
    with pytest.raises(InvalidSetupToken):
        await service.consume(first)
    await service.consume(second)


async def test_no_token_or_hash_reaches_the_audit_trail(
    service: SetupTokenService, audit: Audit
) -> None:
    token = await service.issue()
    await service.consume(token)
    with pytest.raises(InvalidSetupToken):
        await service.consume(token + "x")
    await audit.recorder.aclose()
    trail = repr(audit.sink.events)
    digest = hashlib.sha256(token.encode()).hexdigest()
    assert token not in trail
    assert token[len(TOKEN_PREFIX) :] not in trail
    assert digest not in trail


async def test_rejections_carry_the_request_context(
    service: SetupTokenService, audit: Audit
) -> None:
    scope = {
        "type": "http",
        "headers": [(b"user-agent", b"probe/1.0")],
        "state": {"client_ip": "198.51.100.9", "request_id": "req-9"},
    }
    with pytest.raises(InvalidSetupToken):
        await service.consume("bad", scope=scope)
    await audit.recorder.aclose()
    rejected = audit.sink.events[-1]
    assert (rejected.client_ip, rejected.user_agent, rejected.request_id) == (
        "198.51.100.9",
        "probe/1.0",
        "req-9",
    )
