"""The database key store: sealed at rest, shared by workers, rotation with a verification
grace, unknown-kid reloads rate limited, unreadable keys skipped (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

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
