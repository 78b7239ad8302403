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
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import ParamSpec, Self, TypeVar

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


def _settle(waiter: asyncio.Future[T], future: Future[T]) -> None:
    """On the loop: the waiter gets the work's outcome (unless its caller stopped waiting)."""
    if waiter.cancelled():
        return
    if future.cancelled():
        waiter.cancel()
        return
    error = future.exception()
    if error is None:
        waiter.set_result(future.result())
    else:
        waiter.set_exception(error)


class HashingPool:
    """Runs blocking hash work in worker threads, refusing work beyond a fixed capacity.

    ``max_concurrency`` defaults to :func:`usable_cores`.
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
        self._executor = ThreadPoolExecutor(concurrency, thread_name_prefix="bastion-hash")
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
        cancelled while its work is still queued takes the work out of the queue.
        """
        with self._lock:
            if self._in_flight >= self._capacity:
                raise HashingOverloaded
            self._in_flight += 1
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[T] = loop.create_future()

        # What asyncio.wrap_future does for this one case, with one callback and one hand-off
        # to the loop: the slot is released by the thread that finishes (or cancels) the work.
        def done(future: Future[T]) -> None:
            self._release()
            try:
                loop.call_soon_threadsafe(_settle, waiter, future)
            except RuntimeError:  # pragma: no cover - the loop is closed: nobody waits now
                pass

        try:
            future = self._executor.submit(fn, *args, **kwargs)
        except BaseException:
            self._release()
            raise
        future.add_done_callback(done)
        try:
            return await waiter
        except asyncio.CancelledError:
            future.cancel()  # still queued: it never runs; running: it finishes (and releases)
            raise

    def _release(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def shutdown(self, *, wait: bool = True) -> None:
        """Stop accepting work; with ``wait``, block until running work has finished."""
        self._executor.shutdown(wait=wait, cancel_futures=True)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.shutdown)
