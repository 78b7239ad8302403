"""PasswordService: the pool in front of every hash, no user enumeration, the full new-password
check in cheap-to-expensive order."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bastion.identity.passwords import (
    Accepted,
    Argon2Hasher,
    BreachCheckUnavailable,
    HashingOverloaded,
    HashingPool,
    HashScheme,
    HibpBreachChecker,
    InMemoryBreachChecker,
    InvalidStoredHash,
    PasswordService,
    PasswordSettings,
    PasswordTooLong,
    Rejected,
    RejectionReason,
    UserInfo,
    VerifyResult,
)

GOOD = "quiet lighthouse painted violet boats"


class SpyHasher:
    """Records which hasher methods ran (wraps a real, fast Argon2Hasher)."""

    def __init__(self, inner: Argon2Hasher) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def hash(self, password: str) -> str:
        self.calls.append("hash")
        return self.inner.hash(password)

    def verify(self, encoded: str, password: str) -> VerifyResult:
        self.calls.append("verify")
        return self.inner.verify(encoded, password)

    def dummy_verify(self, password: str) -> None:
        self.calls.append("dummy_verify")
        self.inner.dummy_verify(password)


class RefusingPool(HashingPool):
    """A pool that fails the test if any work reaches it."""

    async def run(self, _fn: Callable[..., Any], /, *_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("work reached the pool")


class SpyBreach:
    def __init__(self, answer: bool | Exception) -> None:
        self.answer = answer
        self.calls = 0

    async def is_breached(self, password: str) -> bool:  # noqa: ARG002 - the protocol's
        self.calls += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@pytest.fixture
async def service(fast_settings: PasswordSettings) -> AsyncIterator[PasswordService]:
    svc = PasswordService(fast_settings, hasher=SpyHasher(Argon2Hasher(fast_settings)))
    yield svc
    await svc.aclose()


async def test_hash_verify_and_rehash_on_login(fast_settings: PasswordSettings) -> None:
    service = PasswordService(fast_settings)
    stored = await service.hash(GOOD)
    result = await service.verify(stored, GOOD)
    assert (result.ok, result.needs_rehash, result.scheme) == (True, False, HashScheme.ARGON2ID)
    assert not (await service.verify(stored, GOOD + "!")).ok

    upgraded = PasswordService(
        PasswordSettings(hash_memory_kib=128, hash_time_cost=1, allow_insecure_hash_parameters=True)
    )
    result = await upgraded.verify(stored, GOOD)
    assert result.ok
    assert result.needs_rehash
    stored = await upgraded.hash(GOOD)
    assert not (await upgraded.verify(stored, GOOD)).needs_rehash
    await service.aclose()
    await upgraded.aclose()


async def test_unknown_user_costs_a_dummy_verification(service: PasswordService) -> None:
    # Threat: user enumeration. An unknown account must cost the same Argon2 work.
    result = await service.verify(None, GOOD)
    assert not result.ok
    assert service.hasher.calls == ["dummy_verify"]  # type: ignore[attr-defined]


async def test_oversized_or_corrupt_input_never_reaches_the_pool(
    fast_settings: PasswordSettings,
) -> None:
    service = PasswordService(fast_settings, pool=RefusingPool(1, 0))
    for call in (
        service.hash("x" * 2000),
        service.verify(None, "x" * 2000),
        service.verify("$argon2id$whatever", "x" * 2000),
    ):
        with pytest.raises(PasswordTooLong):
            await call
    with pytest.raises(InvalidStoredHash):
        await service.verify("md5$deadbeef", GOOD)


async def test_overload_propagates(fast_settings: PasswordSettings) -> None:
    gate = threading.Event()
    service = PasswordService(fast_settings, pool=HashingPool(1, 0))
    blocker = asyncio.create_task(service.pool.run(gate.wait, 5))
    for _ in range(5000):
        if service.pool.in_flight:
            break
        await asyncio.sleep(0.001)
    with pytest.raises(HashingOverloaded):
        await service.hash(GOOD)
    with pytest.raises(HashingOverloaded):
        await service.verify(None, GOOD)
    gate.set()
    await blocker
    await service.aclose()


async def test_local_rejection_short_circuits_remote_and_history(
    fast_settings: PasswordSettings,
) -> None:
    breach = SpyBreach(answer=True)
    settings = fast_settings.model_copy(update={"history_size": 5})
    service = PasswordService(settings, breach_checker=breach)
    decision = await service.check_new_password("password123!", previous_hashes=["garbage"])
    assert isinstance(decision, Rejected)
    assert decision.reasons == (RejectionReason.COMMON,)
    assert breach.calls == 0
    await service.aclose()


async def test_breached_password(fast_settings: PasswordSettings) -> None:
    service = PasswordService(fast_settings, breach_checker=InMemoryBreachChecker([GOOD]))
    decision = await service.check_new_password(GOOD)
    assert isinstance(decision, Rejected)
    assert decision.reasons == (RejectionReason.BREACHED,)
    assert (await service.check_new_password(GOOD + " twice")).ok
    await service.aclose()


async def test_breach_check_outage_follows_the_setting(fast_settings: PasswordSettings) -> None:
    down = SpyBreach(answer=BreachCheckUnavailable())
    allow = PasswordService(fast_settings, breach_checker=down)
    assert isinstance(await allow.check_new_password(GOOD), Accepted)
    reject_settings = fast_settings.model_copy(update={"breach_check_on_error": "reject"})
    strict = PasswordService(reject_settings, breach_checker=down)
    decision = await strict.check_new_password(GOOD)
    assert isinstance(decision, Rejected)
    assert decision.reasons == (RejectionReason.BREACH_CHECK_UNAVAILABLE,)
    await allow.aclose()
    await strict.aclose()


async def test_history_is_off_by_default_and_refuses_reuse_when_on(
    fast_settings: PasswordSettings,
) -> None:
    off = PasswordService(fast_settings)
    old = [await off.hash("an old one nobody remembers"), await off.hash(GOOD)]
    assert (await off.check_new_password(GOOD, previous_hashes=old)).ok

    on = PasswordService(fast_settings.model_copy(update={"history_size": 2}))
    decision = await on.check_new_password(GOOD, previous_hashes=old)
    assert isinstance(decision, Rejected)
    assert decision.reasons == (RejectionReason.REUSED,)
    # Only the last N are checked.
    one = PasswordService(fast_settings.model_copy(update={"history_size": 1}))
    assert (await one.check_new_password(GOOD, previous_hashes=old)).ok
    for svc in (off, on, one):
        await svc.aclose()


async def test_user_info_reaches_the_policy(service: PasswordService) -> None:
    decision = await service.check_new_password(
        "lighthouse keeper annabelle", user=UserInfo(names=("Annabelle Lee",))
    )
    assert isinstance(decision, Rejected)
    assert RejectionReason.SIMILAR_TO_USER_INFO in decision.reasons


async def test_breach_backend_is_chosen_by_setting(fast_settings: PasswordSettings) -> None:
    assert PasswordService(fast_settings).breach_checker is None
    on = PasswordService(fast_settings.model_copy(update={"breach_check": True}))
    assert isinstance(on.breach_checker, HibpBreachChecker)
    await on.aclose()  # closes the client it created, without any request made
