"""The password service: hashing through the bounded pool, login verification without user
enumeration, and the full new-password check (policy, breach corpus, history).

One instance per process, built from :class:`PasswordSettings`; the backends (hasher, breach
checker) are chosen by settings and can be injected for tests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from bastion.identity.passwords.breach import HibpBreachChecker
from bastion.identity.passwords.errors import BreachCheckUnavailable
from bastion.identity.passwords.hashing import Argon2Hasher, identify
from bastion.identity.passwords.interfaces import (
    BreachChecker,
    HashScheme,
    PasswordHasher,
    VerifyResult,
)
from bastion.identity.passwords.normalization import password_bytes
from bastion.identity.passwords.policy import (
    PasswordPolicy,
    PolicyDecision,
    Rejected,
    RejectionReason,
    UserInfo,
)
from bastion.identity.passwords.pool import HashingPool
from bastion.identity.passwords.settings import PasswordSettings

__all__ = ["MEMORY_IDLE_SECONDS", "PasswordService"]

#: Hashing idle this long, the hasher's reusable Argon2 memory is unmapped (see
#: :mod:`~bastion.identity.passwords.scratch`): held while logins keep coming, not by an idle
#: worker.
MEMORY_IDLE_SECONDS = 2.0


class PasswordService:
    """Everything the identity flows need from passwords, safe to call on the event loop."""

    def __init__(
        self,
        settings: PasswordSettings,
        *,
        hasher: PasswordHasher | None = None,
        pool: HashingPool | None = None,
        breach_checker: BreachChecker | None = None,
    ) -> None:
        self.settings = settings
        self.hasher: PasswordHasher = hasher or Argon2Hasher(settings)
        self.pool = pool or HashingPool(
            settings.hash_max_concurrency,
            settings.hash_max_waiting,
            hand_over_batch=settings.hash_hand_over_batch,
        )
        self.policy = PasswordPolicy(settings)
        if breach_checker is None and settings.breach_check:
            breach_checker = HibpBreachChecker.from_settings(settings)
        self.breach_checker = breach_checker
        release: Callable[[], int] | None = getattr(self.hasher, "release_memory", None)
        self._release_memory = release
        self._last_hash = 0.0
        self._release_timer: asyncio.TimerHandle | None = None

    def _hashed(self) -> None:
        """After each hash: arm the release of the hasher's memory once hashing goes idle."""
        self._last_hash = time.monotonic()
        if self._release_timer is None and self._release_memory is not None:
            loop = asyncio.get_running_loop()  # once per idle period, not per hash
            self._release_timer = loop.call_later(MEMORY_IDLE_SECONDS, self._release_if_idle)

    def _release_if_idle(self) -> None:
        self._release_timer = None
        if self._release_memory is None:
            return
        idle_for = time.monotonic() - self._last_hash
        if not self.pool.in_flight and idle_for >= MEMORY_IDLE_SECONDS:
            self._release_memory()
            return
        wait = MEMORY_IDLE_SECONDS - idle_for if idle_for < MEMORY_IDLE_SECONDS else None
        loop = asyncio.get_running_loop()
        self._release_timer = loop.call_later(wait or MEMORY_IDLE_SECONDS, self._release_if_idle)

    async def hash(self, password: str) -> str:
        """Argon2id hash of ``password``. Raises ``PasswordTooLong``, ``HashingOverloaded``."""
        password_bytes(password)  # refuse oversized input before it takes a pool slot
        try:
            return await self.pool.run(self.hasher.hash, password)
        finally:
            self._hashed()

    async def verify(
        self, encoded: str | None, password: str, *, login: bool = False
    ) -> VerifyResult:
        """Check a login. Pass ``encoded=None`` when the account does not exist (or has no
        password): the same work is done and ``ok`` is False, so the response time does not
        reveal which accounts exist (user enumeration).

        ``login=True`` for the password login itself: its outcome may reach the loop in a
        batch with other logins' while logins are queued (:meth:`HashingPool.run_batched`);
        both branches above go through it, so holding never depends on the account.

        Raises ``PasswordTooLong``, ``HashingOverloaded``, ``InvalidStoredHash``.
        """
        password_bytes(password)
        if encoded is not None:
            identify(encoded)  # a corrupt stored hash fails here, without taking a pool slot
        run = self.pool.run_batched if login else self.pool.run
        try:
            if encoded is None:
                await run(self.hasher.dummy_verify, password)
                return VerifyResult(ok=False, needs_rehash=False, scheme=HashScheme.ARGON2ID)
            return await run(self.hasher.verify, encoded, password)
        finally:
            self._hashed()

    async def check_new_password(
        self,
        password: str,
        *,
        user: UserInfo | None = None,
        previous_hashes: Sequence[str] = (),
    ) -> PolicyDecision:
        """Decide on a new password: local policy, then breach corpus, then history.

        Cheap checks first; the breach corpus is queried and old hashes are verified only for a
        password the local policy accepts. ``previous_hashes`` are the user's stored hashes,
        newest first; only the last ``history_size`` are checked (none by default).
        Raises ``HashingOverloaded``.
        """
        # zxcvbn is CPU-bound pure Python: run it in the bounded pool, not on the event loop.
        decision = await self.pool.run(self.policy.evaluate, password, user)
        if isinstance(decision, Rejected):
            return decision
        if self.breach_checker is not None:
            try:
                if await self.breach_checker.is_breached(password):
                    return self.policy.reject(RejectionReason.BREACHED)
            except BreachCheckUnavailable:
                if self.settings.breach_check_on_error == "reject":
                    return self.policy.reject(RejectionReason.BREACH_CHECK_UNAVAILABLE)
        for encoded in previous_hashes[: self.settings.history_size]:
            if (await self.verify(encoded, password)).ok:
                return self.policy.reject(RejectionReason.REUSED)
        return decision

    async def aclose(self) -> None:
        """Release the pool's threads and the breach checker's connections."""
        close = getattr(self.breach_checker, "aclose", None)
        if close is not None:
            await close()
        if self._release_timer is not None:
            self._release_timer.cancel()
            self._release_timer = None
        self.pool.shutdown(wait=False)
        if self._release_memory is not None:
            self._release_memory()  # buffers still in use stay with their hash
