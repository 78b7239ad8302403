"""Instructions per multi-factor request on SQLite, counted by valgrind's callgrind (the
SQLite side of :mod:`bench.identity.pg_roundtrips`' MFA requests).

The app is :mod:`bench.identity.inprocess`' (``bastion serve``'s settings on SQLite, raw ASGI
calls) with an account that has an authenticator app. Targets: ``factors`` (``GET
/v1/account/mfa``) and ``stepup`` (``POST /v1/sessions/current/step-up`` with a TOTP code; the
clock moves one TOTP step before each, so each code is new, and the signing keys' cache, which
that ages, is reloaded inside the count). Counting covers ``--requests`` requests and the audit
writer draining its queue. Usage::

    .venv/bin/python -m bench.identity.mfa_instructions [--requests 200] [factors stepup]
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench import callgrind
from bench.identity.inprocess import settings_for
from bench.identity.pg_roundtrips import MfaRequests, SteppingClock

TARGETS = ("factors", "stepup")
_WARMUP = 50


async def _drive(target: str, n: int, flags: Path) -> None:
    from bastion import logging as bastion_logging  # noqa: PLC0415
    from bastion.app import create_app  # noqa: PLC0415
    from bastion.services import build_services  # noqa: PLC0415
    from bastion.storage import migrate  # noqa: PLC0415

    settings = settings_for(flags)
    bastion_logging.configure(settings.log_level, json=settings.log_json)
    await migrate.upgrade(settings.effective_database_url)
    clock = SteppingClock()
    app = create_app(settings, services=build_services(settings, clock=clock))
    async with app.router.lifespan_context(app):
        mfa = MfaRequests(app, clock)
        await mfa.enroll(flags)
        login = await mfa.challenged(), await mfa.complete()
        if login[1] != 200:
            raise SystemExit("no session")

        async def step_up() -> int:
            await mfa.next_step()
            return await mfa.step_up()

        run = mfa.factors if target == "factors" else step_up
        queue = getattr(app.state.services.audit, "_queue", None)

        async def requests(count: int) -> None:
            for _ in range(count):
                if await run() != 200:
                    raise SystemExit(f"{target}: not 200")
            if queue is not None:  # the writer's work belongs to the count
                await queue.join()

        await requests(_WARMUP)
        callgrind.ready(flags)
        await requests(n)
        callgrind.done(flags)


def main() -> None:
    callgrind.command_line(
        __spec__.name,
        __doc__.splitlines()[0],
        TARGETS,
        lambda target, n, flags: asyncio.run(_drive(target, n, flags)),
        requests=200,
    )


if __name__ == "__main__":
    main()
