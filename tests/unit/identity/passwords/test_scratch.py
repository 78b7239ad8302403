"""Argon2 in reused memory: same answers as libargon2, wiped, bounded, released when idle."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import threading

import argon2
import pytest
from argon2.low_level import Type, hash_secret
from tests.unit.crypto.conformance import conformance_path, parse_records

from bastion.identity.passwords import Argon2Hasher, PasswordService, PasswordSettings
from bastion.identity.passwords import services as password_services
from bastion.identity.passwords.scratch import ScratchMemory

PASSWORD = "correct horse battery staple"
#: The RFC 9106 vectors without secret and associated data (16-byte salt, 32-byte tag).
VECTOR = PasswordSettings(
    hash_memory_kib=32,
    hash_time_cost=3,
    hash_parallelism=4,
    allow_insecure_hash_parameters=True,
)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def test_known_answers_through_the_reused_memory() -> None:
    hasher = Argon2Hasher(VECTOR)
    cases = [
        case
        for case in parse_records(conformance_path("vectors", "argon2id.txt"))
        if (case["memcost"], case["iter"], case["lanes"], case["length"]) == ("32", "3", "4", "32")
        and not case.get("secret")
        and not case.get("ad")
    ]
    assert len(cases) == 2
    for case in cases:
        salt, tag = bytes.fromhex(case["salt"]), bytes.fromhex(case["output"])
        encoded = f"$argon2id$v=19$m=32,t=3,p=4${_b64(salt)}${_b64(tag)}"
        password = bytes.fromhex(case["pass"]).decode()
        result = hasher.verify(encoded, password)
        assert (result.ok, result.needs_rehash) == (True, False), case["COUNT"]
        assert not hasher.verify(encoded, password + "x").ok
    assert hasher._scratch.mapped == 1  # the reused buffer did the work, not libargon2's malloc


def test_hashes_are_libargon2s_and_verify_both_ways(fast_settings: PasswordSettings) -> None:
    hasher = Argon2Hasher(fast_settings)
    reference = argon2.PasswordHasher(
        time_cost=fast_settings.hash_time_cost,
        memory_cost=fast_settings.hash_memory_kib,
        parallelism=fast_settings.hash_parallelism,
    )
    ours = hasher.hash(PASSWORD)
    assert reference.verify(ours, PASSWORD.encode())
    assert not reference.check_needs_rehash(ours)
    theirs = reference.hash(PASSWORD.encode())
    assert hasher.verify(theirs, PASSWORD).ok
    assert not hasher.verify(theirs, PASSWORD + "!").ok
    # Byte for byte what libargon2 encodes, given the same salt.
    salt = base64.b64decode(ours.split("$")[4] + "==")
    expected = hash_secret(
        PASSWORD.encode(),
        salt,
        fast_settings.hash_time_cost,
        fast_settings.hash_memory_kib,
        fast_settings.hash_parallelism,
        32,
        Type.ID,
    )
    assert ours == expected.decode()
    assert hasher._scratch.mapped == 1


def test_other_spellings_are_left_to_libargon2(fast_hasher: Argon2Hasher) -> None:
    encoded = fast_hasher.hash(PASSWORD)
    head, salt, tag = encoded.rsplit("$", 2)
    # A padded tag is not the canonical spelling: libargon2 decides (it refuses padding).
    with pytest.raises(Exception, match="malformed"):
        fast_hasher.verify(f"{head}${salt}${tag}=", PASSWORD)
    # Other parameters: still verified, and flagged for rehash.
    other = argon2.PasswordHasher(time_cost=2, memory_cost=64, parallelism=1)
    result = fast_hasher.verify(other.hash(PASSWORD.encode()), PASSWORD)
    assert (result.ok, result.needs_rehash) == (True, True)


def test_memory_is_wiped_after_each_hash(fast_hasher: Argon2Hasher) -> None:
    fast_hasher.verify(fast_hasher.hash(PASSWORD), PASSWORD)
    (buffer,) = fast_hasher._scratch._free
    data = buffer._map[:]
    assert data.count(0) == len(data)  # no block of the password's computation left behind


def test_buffers_are_bounded_and_lent_to_one_hash_at_a_time() -> None:
    scratch = ScratchMemory(64 * 1024, max_buffers=2)
    first, second = scratch.take(), scratch.take()
    assert first is not None
    assert second is not None
    assert first is not second
    assert scratch.take() is None  # a third concurrent hash falls back to libargon2's malloc
    assert scratch.mapped == 2
    scratch.give_back(first)
    assert scratch.release() == 1  # only the free one; the lent one stays mapped
    assert scratch.mapped == 1
    scratch.give_back(second)
    assert scratch.take() is second
    with pytest.raises(ValueError, match="must be >= 1"):
        ScratchMemory(0, 1)


def test_hashes_beyond_the_buffers_still_verify(fast_settings: PasswordSettings) -> None:
    settings = fast_settings.model_copy(update={"hash_max_concurrency": 1})
    hasher = Argon2Hasher(settings)
    encoded = hasher.hash(PASSWORD)
    held = hasher._scratch.take()  # the one buffer is busy elsewhere
    assert held is not None
    assert hasher.verify(encoded, PASSWORD).ok
    assert not hasher.verify(encoded, "wrong").ok
    assert hasher.verify(hasher.hash(PASSWORD), PASSWORD).ok
    assert hasher._scratch.mapped == 1


def test_concurrent_hashes_each_get_their_own_buffer(fast_settings: PasswordSettings) -> None:
    hasher = Argon2Hasher(fast_settings.model_copy(update={"hash_max_concurrency": 4}))
    encoded = [hasher.hash(f"{PASSWORD} {i}") for i in range(8)]
    failures: list[int] = []

    def check(i: int) -> None:
        for _ in range(20):
            if not hasher.verify(encoded[i], f"{PASSWORD} {i}").ok:
                failures.append(i)
            if hasher.verify(encoded[i], f"{PASSWORD} {i + 1}").ok:
                failures.append(-i)

    threads = [threading.Thread(target=check, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert 1 <= hasher._scratch.mapped <= 4


async def test_the_service_releases_the_memory_once_idle(
    fast_settings: PasswordSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(password_services, "MEMORY_IDLE_SECONDS", 0.05)
    hasher = Argon2Hasher(fast_settings)
    service = PasswordService(fast_settings, hasher=hasher)
    try:
        encoded = await service.hash(PASSWORD)
        for _ in range(3):
            assert (await service.verify(encoded, PASSWORD)).ok
            await service.verify(None, PASSWORD)
        assert hasher._scratch.mapped == 1  # kept while hashes keep coming
        for _ in range(100):
            if hasher._scratch.mapped == 0:
                break
            await asyncio.sleep(0.02)
        assert hasher._scratch.mapped == 0
        assert (await service.verify(encoded, PASSWORD)).ok  # mapped again on demand
        assert hasher._scratch.mapped == 1
    finally:
        await service.aclose()
    assert hasher._scratch.mapped == 0


_FAULTS = """
import resource, sys
from bastion.identity.passwords import Argon2Hasher, PasswordSettings
hasher = Argon2Hasher(PasswordSettings())
encoded = hasher.hash("correct horse battery staple")
hasher.verify(encoded, "correct horse battery staple")
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    hasher.verify(encoded, "correct horse battery staple")
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="glibc malloc tuning, Linux page faults")
def test_no_fresh_pages_per_hash_under_the_servers_malloc_tuning() -> None:
    # `bastion serve` hands every malloc'd Argon2 buffer back at once (fixed mmap threshold):
    # through libargon2's malloc, each 19 MiB hash faulted in 266-4,900 fresh pages.
    from bastion.server import _MALLOC_TUNING  # noqa: PLC0415

    env = {**os.environ, **dict(_MALLOC_TUNING)}
    out = subprocess.run(  # noqa: S603 - our interpreter, a fixed script
        [sys.executable, "-c", _FAULTS], env=env, capture_output=True, text=True, check=True
    )
    assert float(out.stdout) < 20
