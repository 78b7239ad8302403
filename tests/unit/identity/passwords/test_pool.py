"""The bounded hashing pool: work runs off the loop; beyond capacity, calls fail fast."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator

import pytest

from bastion.identity.passwords import (
    Argon2Hasher,
    HashingOverloaded,
    HashingPool,
    PasswordSettings,
)
from bastion.identity.passwords.pool import usable_cores

WAIT = 5.0  # generous upper bound for anything that should happen "at once"


@pytest.fixture
async def pool() -> AsyncIterator[HashingPool]:
    async with HashingPool(max_concurrency=2, max_waiting=1) as p:
        yield p


def _blocker(gate: threading.Event, started: threading.Semaphore) -> str:
    started.release()
    assert gate.wait(WAIT)
    return threading.current_thread().name


async def _wait_until(predicate: object) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline
        await asyncio.sleep(0.005)


@pytest.mark.timing
async def test_saturated_pool_refuses_excess_calls_immediately(pool: HashingPool) -> None:
    gate, started = threading.Event(), threading.Semaphore(0)
    # Two running + one waiting = capacity 3.
    tasks = [asyncio.create_task(pool.run(_blocker, gate, started)) for _ in range(3)]
    await _wait_until(lambda: pool.in_flight == 3)

    for _ in range(20):
        start = time.perf_counter()
        with pytest.raises(HashingOverloaded):
            await pool.run(_blocker, gate, started)
        assert time.perf_counter() - start < 0.1  # fails fast, does not queue
    assert pool.in_flight == 3

    gate.set()
    names = await asyncio.gather(*tasks)
    assert all(name.startswith("bastion-hash") for name in names)
    await _wait_until(lambda: pool.in_flight == 0)
    assert await pool.run(str.upper, "ok") == "OK"  # capacity is back


async def test_real_argon2_excess_fails_fast() -> None:
    settings = PasswordSettings()  # real defaults: ~19 MiB per hash is what the cap protects
    hasher = Argon2Hasher(settings)
    async with HashingPool(max_concurrency=1, max_waiting=1) as pool:
        calls = [pool.run(hasher.hash, f"password number {i}") for i in range(6)]
        results = await asyncio.gather(*calls, return_exceptions=True)
    hashes = [r for r in results if isinstance(r, str)]
    refused = [r for r in results if isinstance(r, HashingOverloaded)]
    assert (len(hashes), len(refused)) == (2, 4)


async def test_no_waiting_room_means_only_the_workers(pool: HashingPool) -> None:
    gate, started = threading.Event(), threading.Semaphore(0)
    async with HashingPool(max_concurrency=1, max_waiting=0) as tight:
        task = asyncio.create_task(tight.run(_blocker, gate, started))
        await _wait_until(lambda: tight.in_flight == 1)
        with pytest.raises(HashingOverloaded):
            await tight.run(_blocker, gate, started)
        gate.set()
        await task


async def test_cancelled_caller_keeps_its_slot_until_the_work_ends(pool: HashingPool) -> None:
    # A cancelled request whose hash is already running still holds the hash's memory.
    gate, started = threading.Event(), threading.Semaphore(0)
    task = asyncio.create_task(pool.run(_blocker, gate, started))
    assert await asyncio.to_thread(lambda: started.acquire(timeout=WAIT))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pool.in_flight == 1
    gate.set()
    await _wait_until(lambda: pool.in_flight == 0)


async def test_queued_work_cancelled_before_it_starts_frees_its_slot() -> None:
    gate, started = threading.Event(), threading.Semaphore(0)
    async with HashingPool(max_concurrency=1, max_waiting=1) as pool:
        running = asyncio.create_task(pool.run(_blocker, gate, started))
        await _wait_until(lambda: pool.in_flight == 1)
        queued = asyncio.create_task(pool.run(_blocker, gate, started))
        await _wait_until(lambda: pool.in_flight == 2)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        await _wait_until(lambda: pool.in_flight == 1)
        gate.set()
        await running


async def test_queued_work_cancelled_by_shutdown_cancels_its_caller() -> None:
    gate, started = threading.Event(), threading.Semaphore(0)
    pool = HashingPool(max_concurrency=1, max_waiting=1)
    running = asyncio.create_task(pool.run(_blocker, gate, started))
    await _wait_until(lambda: pool.in_flight == 1)
    queued = asyncio.create_task(pool.run(_blocker, gate, started))
    await _wait_until(lambda: pool.in_flight == 2)
    pool.shutdown(wait=False)  # the queued work never runs: its caller is not left waiting
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(queued, WAIT)
    assert pool.in_flight == 1
    gate.set()
    assert (await running).startswith("bastion-hash")
    assert pool.in_flight == 0


async def test_results_come_back_unchanged(pool: HashingPool) -> None:
    value = object()
    assert await pool.run(lambda: value) is value
    assert await asyncio.gather(*(pool.run(pow, n, 2) for n in range(3))) == [0, 1, 4]


async def test_cancelled_queued_work_never_runs() -> None:
    gate, started = threading.Event(), threading.Semaphore(0)
    ran: list[int] = []
    async with HashingPool(max_concurrency=1, max_waiting=2) as pool:
        running = asyncio.create_task(pool.run(_blocker, gate, started))
        await _wait_until(lambda: pool.in_flight == 1)
        assert started.acquire(timeout=WAIT)  # running: the worker does not need the loop
        queued = asyncio.create_task(pool.run(ran.append, 1))
        await _wait_until(lambda: pool.in_flight == 2)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        assert pool.in_flight == 1  # at once, not when a worker reaches the cancelled call
        gate.set()
        await running
        await pool.run(ran.append, 2)  # the worker went past the cancelled call
    assert ran == [2]


async def test_threads_start_as_work_needs_them_up_to_the_concurrency() -> None:
    gate, started = threading.Event(), threading.Semaphore(0)
    async with HashingPool(max_concurrency=2, max_waiting=4) as pool:
        before = {t.name for t in threading.enumerate()}

        def hashing_threads() -> set[str]:
            return {t.name for t in threading.enumerate()} - before

        assert await pool.run(threading.current_thread) is not threading.current_thread()
        assert len(hashing_threads()) == 1  # one call at a time: one thread
        tasks = [asyncio.create_task(pool.run(_blocker, gate, started)) for _ in range(5)]
        await _wait_until(lambda: pool.in_flight == 5)
        for _ in range(2):
            assert started.acquire(timeout=WAIT)
        assert not started.acquire(timeout=0.05)  # two run, three wait
        assert len(hashing_threads()) == 2
        gate.set()
        names = set(await asyncio.gather(*tasks))
        assert names <= hashing_threads()
        assert all(n.startswith("bastion-hash") for n in names)


async def test_no_work_after_shutdown() -> None:
    pool = HashingPool(max_concurrency=1, max_waiting=0)
    assert await pool.run(pow, 2, 3) == 8
    pool.shutdown()
    with pytest.raises(RuntimeError, match="after shutdown"):
        await pool.run(pow, 2, 3)
    assert pool.in_flight == 0


async def test_exceptions_propagate_and_release_the_slot(pool: HashingPool) -> None:
    def boom() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await pool.run(boom)
    await _wait_until(lambda: pool.in_flight == 0)


async def test_the_event_loop_keeps_running_while_hashing(pool: HashingPool) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    ticking = asyncio.create_task(ticker())
    await pool.run(time.sleep, 0.2)
    ticking.cancel()
    assert ticks > 20


def test_overloaded_error_shape() -> None:
    error = HashingOverloaded()
    assert (error.code, error.status) == ("overloaded", 503)
    assert error.headers == {"Retry-After": "1"}


def test_invalid_sizes() -> None:
    with pytest.raises(ValueError, match="max_waiting"):
        HashingPool(max_concurrency=1, max_waiting=-1)
    HashingPool(max_concurrency=None).shutdown()  # CPU count


def test_default_concurrency_is_the_cpus_this_process_may_use() -> None:
    # Not os.cpu_count(): pinned (taskset, a container's cpuset) to fewer CPUs, extra hashing
    # threads would only hold more memory.
    mine = os.sched_getaffinity(0)
    one = {min(mine)}
    os.sched_setaffinity(0, one)
    try:
        pool = HashingPool()
        assert pool.max_concurrency == usable_cores() == 1
        pool.shutdown()
    finally:
        os.sched_setaffinity(0, mine)
    pool = HashingPool()
    assert pool.max_concurrency == len(mine)
    pool.shutdown()


def _gated(gate: threading.Event, started: threading.Event, value: str) -> str:
    started.set()
    assert gate.wait(WAIT)
    return value


async def _queue_two(
    pool: HashingPool, *, first_batched: bool = True, second_batched: bool = True
) -> tuple[asyncio.Task[str], asyncio.Task[str], threading.Event, threading.Event]:
    """``first`` finished while ``second`` was queued behind it; ``second`` running, gated."""
    first_gate, first_started = threading.Event(), threading.Event()
    second_gate, second_started = threading.Event(), threading.Event()
    run_first = pool.run_batched if first_batched else pool.run
    run_second = pool.run_batched if second_batched else pool.run
    first = asyncio.create_task(run_first(_gated, first_gate, first_started, "first"))
    assert await asyncio.to_thread(first_started.wait, WAIT)
    second = asyncio.create_task(run_second(_gated, second_gate, second_started, "second"))
    await _wait_until(lambda: pool.in_flight == 2)
    first_gate.set()
    assert await asyncio.to_thread(second_started.wait, WAIT)
    return first, second, second_gate, second_started


async def test_while_work_is_queued_outcomes_are_handed_over_together() -> None:
    # The loop's share of two logins in one burst, the second on warm caches (pool.py).
    async with HashingPool(max_concurrency=1, max_waiting=2, hand_over_batch=2) as pool:
        first, second, second_gate, _ = await _queue_two(pool)
        await asyncio.sleep(0.05)  # time enough for a hand-over, had there been one
        assert not first.done()  # held while the queued call runs
        assert pool.in_flight == 1  # its slot is free already: the work has finished
        second_gate.set()
        assert list(await asyncio.wait_for(asyncio.gather(first, second), WAIT)) == [
            "first",
            "second",
        ]


async def test_batch_of_one_hands_each_outcome_over_at_once() -> None:
    async with HashingPool(max_concurrency=1, max_waiting=2, hand_over_batch=1) as pool:
        first, second, second_gate, _ = await _queue_two(pool)
        assert await asyncio.wait_for(first, WAIT) == "first"  # while the second still runs
        assert not second.done()
        second_gate.set()
        assert await second == "second"


async def test_a_full_batch_goes_without_waiting_for_the_rest_of_the_queue() -> None:
    gate, started = threading.Event(), threading.Event()
    async with HashingPool(max_concurrency=1, max_waiting=3, hand_over_batch=2) as pool:
        first, second, second_gate, _ = await _queue_two(pool)
        third = asyncio.create_task(pool.run_batched(_gated, gate, started, "third"))
        await _wait_until(lambda: pool.in_flight == 2)
        second_gate.set()  # the batch of two is full: handed over while the third runs
        assert list(await asyncio.wait_for(asyncio.gather(first, second), WAIT)) == [
            "first",
            "second",
        ]
        assert await asyncio.to_thread(started.wait, WAIT)
        assert not third.done()
        gate.set()
        assert await third == "third"


async def test_an_outcome_is_never_held_for_an_empty_queue() -> None:
    async with HashingPool(max_concurrency=1, max_waiting=2, hand_over_batch=16) as pool:
        assert await asyncio.wait_for(pool.run_batched(str.upper, "alone"), WAIT) == "ALONE"
        # The queued call is cancelled: the held outcome goes when the queue is found empty.
        first_gate, first_started = threading.Event(), threading.Event()
        first = asyncio.create_task(pool.run_batched(_gated, first_gate, first_started, "first"))
        assert await asyncio.to_thread(first_started.wait, WAIT)
        queued = asyncio.create_task(pool.run_batched(str.upper, "never"))
        await _wait_until(lambda: pool.in_flight == 2)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        first_gate.set()
        assert await asyncio.wait_for(first, WAIT) == "first"


async def test_held_outcomes_go_out_at_shutdown_and_errors_are_held_like_results() -> None:
    def boom() -> None:
        raise ValueError("boom")

    pool = HashingPool(max_concurrency=1, max_waiting=2, hand_over_batch=3)
    gate, started = threading.Event(), threading.Event()
    running = asyncio.create_task(pool.run_batched(_gated, gate, started, "running"))
    assert await asyncio.to_thread(started.wait, WAIT)
    failing = asyncio.create_task(pool.run_batched(boom))
    await _wait_until(lambda: pool.in_flight == 2)
    gate.set()
    with pytest.raises(ValueError, match="boom"):
        await asyncio.wait_for(failing, WAIT)
    assert await running == "running"
    await asyncio.to_thread(pool.shutdown)


def test_hand_over_batch_is_at_least_one() -> None:
    with pytest.raises(ValueError, match="hand_over_batch"):
        HashingPool(max_concurrency=1, hand_over_batch=0)


@pytest.mark.parametrize(
    ("first_batched", "second_batched"),
    [(False, False), (False, True), (True, False)],
    ids=["plain-then-plain", "plain-then-login", "login-then-plain"],
)
async def test_only_a_login_behind_a_login_keeps_an_outcome_waiting(
    first_batched: bool, second_batched: bool
) -> None:
    # The registration oracle of the first version (login9): a strength check's outcome held
    # while another registration's background hash ran. A plain call's outcome goes at once,
    # and a held login outcome goes before a plain call runs: only other logins, which cost
    # the same for every account, can delay a login's answer.
    async with HashingPool(max_concurrency=1, max_waiting=2, hand_over_batch=3) as pool:
        first, second, second_gate, _ = await _queue_two(
            pool, first_batched=first_batched, second_batched=second_batched
        )
        assert await asyncio.wait_for(first, WAIT) == "first"  # while the second still runs
        assert not second.done()
        second_gate.set()
        assert await asyncio.wait_for(second, WAIT) == "second"
