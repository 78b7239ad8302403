"""The per-worker memory of verified access tokens: never past expiry, never longer than the
re-verification bound, bounded in size."""

from __future__ import annotations

from datetime import timedelta

from bastion.clock import FrozenClock
from bastion.identity.sessions.auth import VerifiedTokens
from bastion.identity.tokens.claims import AccessTokenClaims, AssuranceLevel, AuthMethod

LEEWAY = 30


def _claims(clock: FrozenClock, lifetime: timedelta, sid: str = "s1") -> AccessTokenClaims:
    now = clock.now()
    return AccessTokenClaims(
        issuer="bastion",
        subject="u1",
        audience=("bastion",),
        session_id=sid,
        jti="j",
        issued_at=now,
        not_before=now,
        expires_at=now + lifetime,
        amr=(AuthMethod.PASSWORD,),
        acr=AssuranceLevel.AAL1,
        kid="k",
    )


def test_a_verified_token_is_remembered_only_for_that_exact_token() -> None:
    clock = FrozenClock()
    cache = VerifiedTokens(clock, leeway_seconds=LEEWAY, reverify_seconds=5.0)
    claims = _claims(clock, timedelta(minutes=5))
    cache.put("a.b.c", claims)
    assert cache.get("a.b.c") is claims
    assert cache.get("a.b.d") is None
    assert cache.get("a.b.c ") is None


def test_an_expired_token_is_never_answered_from_memory() -> None:
    clock = FrozenClock()
    # A re-verification bound longer than the token's life: only expiry can end the entry.
    cache = VerifiedTokens(clock, leeway_seconds=LEEWAY, reverify_seconds=3600.0)
    cache.put("t", _claims(clock, timedelta(seconds=60)))
    clock.advance(timedelta(seconds=60 + LEEWAY - 1))
    assert cache.get("t") is not None  # still within exp + leeway, as verification accepts
    clock.advance(timedelta(seconds=1))
    assert cache.get("t") is None  # exp <= now - leeway: verification would refuse it


def test_a_clock_set_back_before_nbf_is_not_answered_from_memory() -> None:
    """The cache applies verification's ``nbf``/``iat`` test too: a wall clock set back (NTP
    step, a restored VM) does not make memory accept what verification would refuse."""
    clock = FrozenClock()
    cache = VerifiedTokens(clock, leeway_seconds=LEEWAY, reverify_seconds=3600.0)
    cache.put("t", _claims(clock, timedelta(minutes=5)))
    clock.advance(timedelta(seconds=-LEEWAY))
    assert cache.get("t") is not None  # nbf == now + leeway: verification accepts
    clock.advance(timedelta(seconds=-1))
    assert cache.get("t") is None  # nbf > now + leeway: verification refuses


class Monotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_token_is_verified_again_after_the_bound() -> None:
    """A signing key removed from the key store stops working within the bound (measured on
    the monotonic clock: setting the wall clock back does not extend it)."""
    clock, monotonic = FrozenClock(), Monotonic()
    cache = VerifiedTokens(clock, leeway_seconds=LEEWAY, reverify_seconds=5.0, monotonic=monotonic)
    cache.put("t", _claims(clock, timedelta(minutes=5)))
    clock.advance(timedelta(seconds=-(LEEWAY - 1)))  # a wall-clock jump back changes nothing
    monotonic.now += 4.0
    assert cache.get("t") is not None
    monotonic.now += 1.0
    assert cache.get("t") is None


def test_memory_is_bounded_least_recently_used_first() -> None:
    clock = FrozenClock()
    cache = VerifiedTokens(clock, leeway_seconds=LEEWAY, reverify_seconds=5.0, max_entries=2)
    for token in ("t1", "t2"):
        cache.put(token, _claims(clock, timedelta(minutes=5)))
    assert cache.get("t1") is not None  # t1 is now the most recently used
    cache.put("t3", _claims(clock, timedelta(minutes=5)))
    assert cache.get("t2") is None
    assert cache.get("t1") is not None
    assert cache.get("t3") is not None
    disabled = VerifiedTokens(clock, leeway_seconds=LEEWAY, reverify_seconds=5.0, max_entries=0)
    disabled.put("t", _claims(clock, timedelta(minutes=5)))
    assert disabled.get("t") is None
