"""Work done after the answer is sent: registration and password-reset requests.

Why: these endpoints must answer identically, in status, body *and time*, whether or not the
account exists (user enumeration). Looking the account up, hashing, writing tokens and queueing
mail cost different amounts of time on each path, so the route only validates the input and
hands the rest to a job here; the answer leaves before any account-dependent work starts.

Jobs are bounded (``max_pending``): beyond it, new requests get a fast 503 instead of growing
memory without limit. A job's failure is logged (class name only) and never reaches a client.
``aclose`` lets running jobs finish (bounded by a timeout) so a shutdown loses no mail.

Periodic jobs (:meth:`BackgroundJobs.every`: the clean-up of ended sessions and tokens) run in
the same process until ``aclose``, which stops them first; a failed round is logged and the
next round runs as planned.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from bastion.logging import get_logger
from bastion.protections.ratelimit.errors import Overloaded

__all__ = ["BackgroundJobs"]

logger = get_logger("bastion.identity.jobs")

DEFAULT_MAX_PENDING = 1000
CLOSE_TIMEOUT_SECONDS = 10.0


class BackgroundJobs:
    """A bounded set of fire-and-forget coroutines."""

    def __init__(self, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self.max_pending = max_pending
        self._tasks: set[asyncio.Task[None]] = set()
        self._periodic: set[asyncio.Task[None]] = set()

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def submit(self, job: Callable[[], Awaitable[None]], name: str) -> None:
        """Start ``job``. Raises ``Overloaded`` (503) when ``max_pending`` jobs are running."""
        if len(self._tasks) >= self.max_pending:
            raise Overloaded
        task = asyncio.create_task(self._run(job, name), name=f"bastion-job-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def every(self, seconds: float, job: Callable[[], Awaitable[None]], name: str) -> None:
        """Run ``job`` every ``seconds`` (the first time ``seconds`` from now) until
        :meth:`aclose`. A round that fails is logged; the next one still runs."""
        if seconds <= 0:
            raise ValueError("a periodic job needs a positive interval")
        task = asyncio.create_task(self._repeat(seconds, job, name), name=f"bastion-every-{name}")
        self._periodic.add(task)
        task.add_done_callback(self._periodic.discard)

    async def _repeat(self, seconds: float, job: Callable[[], Awaitable[None]], name: str) -> None:
        while True:
            await asyncio.sleep(seconds)
            await self._run(job, name)

    @staticmethod
    async def _run(job: Callable[[], Awaitable[None]], name: str) -> None:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a job's failure must not vanish nor crash
            # The class name only: the traceback's locals may hold the password being hashed.
            logger.error("background job failed", job=name, error=type(exc).__name__)  # noqa: TRY400

    async def drain(self, within: float = CLOSE_TIMEOUT_SECONDS) -> None:
        """Wait until every job started so far has finished (at most ``within`` seconds)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=within)

    async def aclose(self, within: float = CLOSE_TIMEOUT_SECONDS) -> None:
        """Stop the periodic jobs, let running jobs finish (at most ``within`` seconds), then
        cancel the rest."""
        for task in list(self._periodic):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.drain(within)
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
