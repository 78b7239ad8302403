"""The database key store: sealed at rest, shared by workers, rotation with a verification
grace, unknown-kid reloads rate limited, unreadable keys skipped (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from pydantic import SecretStr
from sqlalchemy import select
from tests.unit.identity.conftest import SECRET

from bastion.clock import FrozenClock
from bastion.crypto import EnvelopeCipher, Keyring
from bastion.identity.tokens import PublicKey, SigningKey, SigningKeyError
from bastion.identity.tokens.models import signing_keys
from bastion.identity.tokens.sqlstore import DatabaseKeyStore
from bastion.storage import Database

GRACE = timedelta(minutes=5, seconds=30)
LIFETIME = timedelta(days=90)


def _store(database: Database, cipher: EnvelopeCipher, clock: FrozenClock) -> DatabaseKeyStore:
    return DatabaseKeyStore(database, cipher, clock, grace=GRACE, refetch_seconds=1)


async def test_keys_are_sealed_at_rest(
    database: Database, cipher: EnvelopeCipher, clock: FrozenClock
) -> None:
    store = _store(database, cipher, clock)
    key = SigningKey.generate(clock=clock, lifetime=LIFETIME)
    await store.rotate(key)
    async with database.engine.connect() as connection:
        sealed = (await connection.execute(select(signing_keys.c.sealed_private_key))).scalar_one()
    private = key.key.as_dict(private=True)["d"]
    assert private not in sealed
    assert (await store.active_key()).kid == key.kid


async def test_a_rotation_is_seen_by_other_workers(
    database: Database, cipher: EnvelopeCipher, clock: FrozenClock
) -> None:
    worker_a, worker_b = _store(database, cipher, clock), _store(database, cipher, clock)
    first = SigningKey.generate(clock=clock, lifetime=LIFETIME)
    await worker_a.rotate(first)
    assert (await worker_b.active_key()).kid == first.kid
    clock.advance(timedelta(seconds=1))
    second = SigningKey.generate(clock=clock, lifetime=LIFETIME)
    await worker_a.rotate(second)
    # An unknown kid makes worker B reload (at most once per refetch interval).
    clock.advance(timedelta(seconds=2))
    assert await worker_b.get(second.kid) is not None
    clock.advance(timedelta(seconds=10))
    assert (await worker_b.active_key()).kid == second.kid
    # The retired key verifies through the grace, then disappears.
    assert await worker_b.get(first.kid) is not None
    assert {k.kid for k in await worker_b.verification_keys()} == {first.kid, second.kid}
    clock.advance(GRACE)
    assert await worker_b.get(first.kid) is None
    assert [k.kid for k in await worker_b.verification_keys()] == [second.kid]


async def test_unknown_kids_reload_at_most_once_per_interval(
    database: Database, cipher: EnvelopeCipher, clock: FrozenClock
) -> None:
    store = _store(database, cipher, clock)
    await store.rotate(SigningKey.generate(clock=clock, lifetime=LIFETIME))
    await store.active_key()
    loaded_at = store._loaded_at
    for n in range(50):
        assert await store.get(f"invented-{n}") is None
    assert store._loaded_at == loaded_at  # no reload within the interval


async def test_keys_sealed_under_another_secret_are_skipped(
    database: Database, cipher: EnvelopeCipher, clock: FrozenClock
) -> None:
    await _store(database, cipher, clock).rotate(
        SigningKey.generate(clock=clock, lifetime=LIFETIME)
    )
    other = EnvelopeCipher.from_keyring(Keyring(SecretStr(SECRET + "-changed")))
    store = _store(database, other, clock)
    with pytest.raises(SigningKeyError):
        await store.active_key()


def test_public_keys_from_a_jwk_set(clock: FrozenClock) -> None:
    key = SigningKey.generate(clock=clock, lifetime=LIFETIME)
    public = PublicKey.from_jwk(key.public_jwk())
    assert public.kid == key.kid
    assert not public.key.is_private
    bad = [
        {**key.public_jwk(), "alg": "HS256"},
        {**key.public_jwk(), "alg": "none"},
        {**key.public_jwk(), "kid": ""},
        {**key.public_jwk(), "crv": "X25519"},
        {**key.public_jwk(), "d": key.key.as_dict(private=True)["d"]},
        {**key.public_jwk(), "x": "not base64!"},
    ]
    for jwk in bad:
        with pytest.raises(SigningKeyError):
            PublicKey.from_jwk(jwk)


def _reference_active(store: DatabaseKeyStore, now: datetime) -> str | None:
    """The active key as chosen among the loaded keys without the memo."""
    signing = [key for key in store._keys.values() if key.signs_at(now)]
    return max(signing, key=lambda key: key.created_at).kid if signing else None


async def test_the_remembered_active_key_is_the_one_chosen_afresh(
    database: Database, cipher: EnvelopeCipher, clock: FrozenClock
) -> None:
    start = clock.now()
    store = _store(database, cipher, clock)
    # Overlapping windows, one key made by a worker whose clock runs ahead, a gap with none.
    windows = [(0, 10), (5, 100), (20, 30), (20, 40), (130, 200)]
    for begins, ends in windows:
        key = SigningKey.generate(
            clock=FrozenClock(start + timedelta(seconds=begins)), lifetime=LIFETIME
        )
        await store.add(
            SigningKey(
                key.kid, key.algorithm, key.created_at, start + timedelta(seconds=ends), key.key
            )
        )
    offsets = [*range(-2, 210, 1), 35, 4, 150, 20, 19, 100, 99, 129, 130, 0, -1, 200]
    for offset in offsets:
        now = start + timedelta(seconds=offset)
        clock.advance(now - clock.now())  # forwards and backwards
        try:
            chosen: str | None = (await store.active_key()).kid
        except SigningKeyError:
            chosen = None
        assert chosen == _reference_active(store, now), offset
        if chosen is not None:  # asked again: the remembered answer, the same
            remembered = store._active
            assert (await store.active_key()).kid == chosen
            assert store._active is remembered
