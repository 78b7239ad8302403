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
from bastion.identity.passwords.settings import DEFAULT_MAX_WAITING

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

    __slots__ = ("args", "cancelled", "fn", "kwargs", "loop", "running", "waiter")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        self.loop = loop
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


def _cancel(waiter: asyncio.Future[Any]) -> None:
    waiter.cancel()


class HashingPool:
    """Runs blocking hash work in worker threads, refusing work beyond a fixed capacity.

    ``max_concurrency`` defaults to :func:`usable_cores`. The workers are threads of the pool's
    own, started as work needs them (at most ``max_concurrency``), taking calls from one queue:
    a call costs one queue entry and one hand-off back to the loop, not an executor's future,
    its condition variable and callbacks chained to an asyncio future (a login pays for this
    hand-off once). Daemon threads: a process exiting without :meth:`shutdown` is not held up.
    """

    def __init__(
        self, max_concurrency: int | None = None, max_waiting: int = DEFAULT_MAX_WAITING
    ) -> None:
        concurrency = max_concurrency or usable_cores()
        if concurrency < 1 or max_waiting < 0:
            raise ValueError("max_concurrency must be >= 1 and max_waiting >= 0")
        self.max_concurrency = concurrency
        self.max_waiting = max_waiting
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
        free at once); work already running finishes, and holds its slot until then.
        """
        job = _Job(asyncio.get_running_loop(), fn, args, kwargs)
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
        jobs, lock = self._jobs, self._lock
        while (job := jobs.get()) is not None:
            with lock:
                if job.cancelled:
                    continue
                job.running = True
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
            job.tell(result, error)
            del job, result, error

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
