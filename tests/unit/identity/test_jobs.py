"""Background jobs: bounded, failures contained, drained on close."""

from __future__ import annotations

import asyncio

import pytest

from bastion.identity.jobs import BackgroundJobs
from bastion.protections.ratelimit.errors import Overloaded


async def test_jobs_run_after_submit_and_drain() -> None:
    jobs = BackgroundJobs()
    done: list[int] = []

    async def job() -> None:
        await asyncio.sleep(0)
        done.append(1)

    jobs.submit(job, "test")
    assert done == []  # not run before the caller answers
    await jobs.drain()
    assert done == [1]
    assert jobs.pending == 0


async def test_full_queue_refuses_fast() -> None:
    jobs = BackgroundJobs(max_pending=2)
    gate = asyncio.Event()

    async def blocked() -> None:
        await gate.wait()

    jobs.submit(blocked, "a")
    jobs.submit(blocked, "b")
    with pytest.raises(Overloaded):
        jobs.submit(blocked, "c")
    gate.set()
    await jobs.aclose()


async def test_a_failing_job_is_contained() -> None:
    jobs = BackgroundJobs()

    async def boom() -> None:
        raise RuntimeError("secret detail")

    jobs.submit(boom, "boom")
    await jobs.drain()
    assert jobs.pending == 0


async def test_close_cancels_what_outlives_the_drain() -> None:
    jobs = BackgroundJobs()

    async def forever() -> None:
        await asyncio.sleep(3600)

    jobs.submit(forever, "forever")
    await asyncio.wait_for(jobs.aclose(within=0.01), 5)
    assert jobs.pending == 0


async def test_periodic_jobs_repeat_survive_failures_and_stop_on_close() -> None:
    jobs = BackgroundJobs()
    rounds: list[int] = []
    third = asyncio.Event()

    async def job() -> None:
        rounds.append(len(rounds))
        if len(rounds) == 1:
            raise RuntimeError("the first round fails")  # logged; the next round still runs
        if len(rounds) == 3:
            third.set()

    jobs.every(0.001, job, "test")
    await asyncio.wait_for(third.wait(), timeout=30)
    await jobs.aclose()
    stopped_at = len(rounds)
    await asyncio.sleep(0.01)
    assert len(rounds) == stopped_at  # no round after close
    with pytest.raises(ValueError, match="positive"):
        jobs.every(0, job, "never")
