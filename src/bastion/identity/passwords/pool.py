"""A bounded pool that runs password hashing off the event loop.

Argon2 is memory-hard on purpose: each hash holds ``hash_memory_kib`` (19 MiB and up) for its
whole run. Hashing on the event loop would stall every request; hashing with unbounded
concurrency lets a login flood allocate memory until the process is killed (OOM), taking every
user down. So hashes run in a fixed set of worker threads (argon2-cffi and bcrypt release the
GIL, so they run truly in parallel), at most ``max_concurrency`` at once, with at most
``max_waiting`` more queued. Beyond that, :class:`HashingOverloaded` (503 with
``Retry-After``) is raised at once: shedding load is better than a queue whose wait exceeds
every client's timeout.

A slot is released when the work *finishes*, not when the caller stops waiting: a cancelled
request whose hash is already running still holds memory, and still counts.

**Login outcomes in batches while logins are queued** (``hand_over_batch``,
:meth:`HashingPool.run_batched`). The event loop's share of a login (the request, the session,
the token, the answer) runs between hashes, after Argon2's memory passes have evicted the CPU's
caches: each burst of loop work starts cold and costs about twice what its instructions cost on
warm caches. While more work waits in the queue, a worker keeps a finished login verification's
outcome and hands it over with the next ones, up to ``hand_over_batch`` at a time, in one
wake-up of the loop: the loop then does that many logins' work in one burst, all but the first
on warm caches (one core shared by the loop and one worker: the loop's CPU a login fell by a
fifth or more with batches of two, by 26-41 % with three; ``docs/benchmarks.md``, login9).

The price is latency, and only under a backlog of logins. **A held outcome waits only for other
batched calls** (login verifications, the unknown-user dummy included), at most
``hand_over_batch - 1`` of them, never for an empty queue (a worker hands over what it holds
before it waits for work) and never for other work: before a worker runs a call of
:meth:`HashingPool.run` (registration's strength check, a new password's hash, a rehash,
background jobs), it hands over what it holds. Every login costs one batched verification
whether the account exists or not, so whether an outcome is held, and for how long, depends on
other logins only, never on any account's state. (The first version held every outcome behind
whatever was queued: a registration's strength check then waited for the background hash of
another registration, and the enumeration timing test caught the difference; login9.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, Generic, ParamSpec, Self, TypeVar

from bastion.identity.passwords.errors import HashingOverloaded
from bastion.identity.passwords.settings import DEFAULT_HAND_OVER_BATCH, DEFAULT_MAX_WAITING

__all__ = ["HashingPool", "usable_cores"]

P = ParamSpec("P")
T = TypeVar("T")


def usable_cores() -> int:
    """The CPUs this process may run on: its affinity set (``taskset``, container cpusets),
    not every CPU of the machine. More hashing threads than that only hold more memory (each
    hash holds its memory cost) without hashing any faster."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class _Job(Generic[T]):
    """One call handed to the workers: queued, then running, or cancelled before it ran.
    ``running`` and ``cancelled`` change under the pool's lock."""

    __slots__ = ("args", "batched", "cancelled", "fn", "kwargs", "loop", "running", "waiter")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        batched: bool = False,
    ) -> None:
        self.loop = loop
        self.batched = batched
        self.waiter: asyncio.Future[T] = loop.create_future()
        self.fn: Callable[..., T] | None = fn
        self.args: tuple[Any, ...] = args
        self.kwargs: dict[str, Any] = kwargs
        self.running = False
        self.cancelled = False

    def tell(self, result: T | None, error: BaseException | None) -> None:
        """From a worker thread: the outcome, to the waiter on its loop."""
        try:  # noqa: SIM105 - per call: cheaper than contextlib.suppress
            self.loop.call_soon_threadsafe(_settle, self.waiter, result, error)
        except RuntimeError:  # pragma: no cover - the loop is closed: nobody waits any more
            pass


def _settle(waiter: asyncio.Future[T], result: T | None, error: BaseException | None) -> None:
    """On the loop: the waiter gets the work's outcome (unless its caller stopped waiting)."""
    if waiter.cancelled():
        return
    if error is not None:
        waiter.set_exception(error)
    else:
        waiter.set_result(result)  # type: ignore[arg-type]


_Outcome = tuple[_Job[Any], Any, BaseException | None]


def _settle_all(outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    """On the loop: the waiters of a batch get their outcomes, in the order the work ended."""
    for waiter, result, error in outcomes:
        _settle(waiter, result, error)


def _hand_over(held: list[_Outcome]) -> None:
    """From a worker thread: held outcomes to their waiters, one wake-up per loop."""
    if len(held) == 1:
        job, result, error = held[0]
        job.tell(result, error)
        return
    by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
    for job, result, error in held:
        by_loop.setdefault(job.loop, []).append((job.waiter, result, error))
    for loop, outcomes in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(_settle_all, outcomes)


def _cancel(waiter: asyncio.Future[Any]) -> None:
    waiter.cancel()


class HashingPool:
    """Runs blocking hash work in worker threads, refusing work beyond a fixed capacity.

    ``max_concurrency`` defaults to :func:`usable_cores`. The workers are threads of the pool's
    own, started as work needs them (at most ``max_concurrency``), taking calls from one queue:
    a call costs one queue entry and one hand-off back to the loop, not an executor's future,
    its condition variable and callbacks chained to an asyncio future (a login pays for this
    hand-off once). Daemon threads: a process exiting without :meth:`shutdown` is not held up.
    ``hand_over_batch``: outcomes a worker may hold while work is queued (see the module
    docstring); 1 hands each over as soon as it is known.
    """

    def __init__(
        self,
        max_concurrency: int | None = None,
        max_waiting: int = DEFAULT_MAX_WAITING,
        *,
        hand_over_batch: int = DEFAULT_HAND_OVER_BATCH,
    ) -> None:
        concurrency = max_concurrency or usable_cores()
        if concurrency < 1 or max_waiting < 0 or hand_over_batch < 1:
            raise ValueError(
                "max_concurrency and hand_over_batch must be >= 1 and max_waiting >= 0"
            )
        self.max_concurrency = concurrency
        self.max_waiting = max_waiting
        self.hand_over_batch = hand_over_batch
        self._capacity = concurrency + max_waiting
        self._jobs: queue.SimpleQueue[_Job[Any] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._closed = False
        # Worker threads release slots, so the count is guarded by a lock, not the event loop.
        self._lock = threading.Lock()
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        """Work items running or queued right now."""
        return self._in_flight

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` in a worker thread and return its result.

        Raises :class:`HashingOverloaded` immediately, without queueing, when every worker is
        busy and the wait queue is full. Exceptions of ``fn`` propagate unchanged. A caller
        cancelled while its work is still queued takes the work out of the queue (its slot is
        free at once); work already running finishes, and holds its slot until then. The
        outcome is handed over as soon as it is known.
        """
        return await self._submit(_Job(asyncio.get_running_loop(), fn, args, kwargs))

    async def run_batched(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """As :meth:`run`, for login verifications only: while more batched calls are queued,
        the outcome may be held until up to ``hand_over_batch - 1`` of them have finished (see
        the module docstring). Every caller of this must submit the same work whatever the
        account's state (a dummy verification for an unknown account), and ``fn`` must not
        wait for the event loop."""
        job = _Job(asyncio.get_running_loop(), fn, args, kwargs, batched=True)
        return await self._submit(job)

    async def _submit(self, job: _Job[T]) -> T:
        worker = None
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if self._in_flight >= self._capacity:
                raise HashingOverloaded
            self._in_flight += 1
            if self._in_flight > len(self._threads) < self.max_concurrency:
                worker = threading.Thread(
                    target=self._work,
                    name=f"bastion-hash_{len(self._threads)}",
                    daemon=True,
                )
                self._threads.append(worker)
        if worker is not None:
            worker.start()
        self._jobs.put(job)
        try:
            return await job.waiter
        except asyncio.CancelledError:
            with self._lock:
                if not job.running and not job.cancelled:
                    job.cancelled = True  # still queued: it never runs
                    self._in_flight -= 1
            raise

    def _work(self) -> None:
        """A worker thread: runs queued calls until :meth:`shutdown` sends it ``None``."""
        jobs, lock, batch = self._jobs, self._lock, self.hand_over_batch
        held: list[_Outcome] = []  # finished, not handed over yet: only while work is queued
        while True:
            if held:
                try:
                    job = jobs.get_nowait()
                except queue.Empty:
                    # Nothing queued: what is held goes now, before this worker waits.
                    _hand_over(held)
                    held = []
                    job = jobs.get()
            else:
                job = jobs.get()
            if job is None:
                break
            with lock:
                if job.cancelled:
                    continue
                job.running = True
            if held and not job.batched:
                # Only batched calls (logins) may keep a held outcome waiting.
                _hand_over(held)
                held = []
            fn, args, kwargs = job.fn, job.args, job.kwargs
            job.fn, job.args, job.kwargs = None, (), {}  # the job keeps no password
            result: Any = None
            error: BaseException | None = None
            try:
                result = fn(*args, **kwargs)  # type: ignore[misc]
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, as raised
                error = exc
            del fn, args, kwargs
            self._release()
            if batch == 1 or not job.batched:
                job.tell(result, error)
            else:
                held.append((job, result, error))
                if len(held) >= batch:
                    _hand_over(held)
                    held = []
            del job, result, error
        if held:
            _hand_over(held)

    def _release(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def shutdown(self, *, wait: bool = True) -> None:
        """Stop accepting work and cancel the queued calls (their callers get
        ``CancelledError``); with ``wait``, block until running work has finished."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is None:
                continue
            with self._lock:
                if job.cancelled or job.running:  # pragma: no cover - not queued any more
                    continue
                job.cancelled = True
                self._in_flight -= 1
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                job.loop.call_soon_threadsafe(_cancel, job.waiter)
        for _ in threads:
            self._jobs.put(None)
        if wait:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.shutdown)
