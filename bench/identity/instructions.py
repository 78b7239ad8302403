"""Instructions per refresh rotation and per password login, counted by valgrind's callgrind:
figures that other load on the shared machine cannot disturb.

The workload is :mod:`bench.identity.inprocess` (Bastion's app on SQLite, raw ASGI calls, Argon2
at 1 MiB / one pass for logins). Counting is switched on once the app is built and warm, covers
``--requests`` requests *and* the audit recorder's writer draining its queue (every thread:
the hashing pool's included; SQLite runs on the loop's thread), then the counts are dumped.
Each target runs in a fresh process. ``hash`` counts one Argon2 verification at the login's
parameters, so that ``login - hash`` is what a login costs beyond its hash. Kernel work
(system calls, thread switches) is not counted: pair these figures with the CPU times of
``inprocess``.

Usage: ``.venv/bin/python -m bench.identity.instructions [--requests 300] [--keep DIR]
[refresh login hash]`` (``--keep``: the callgrind files, for ``callgrind_annotate``).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
from pathlib import Path

from bench import callgrind
from bench.identity.inprocess import PASSWORD, Workload, settings_for

TARGETS = ("refresh", "login", "hash")
_WARMUP = 200


async def _drive_app(target: str, n: int, flags: Path) -> None:
    from bastion import logging as bastion_logging  # noqa: PLC0415
    from bastion.app import create_app  # noqa: PLC0415
    from bastion.storage import migrate  # noqa: PLC0415

    settings = settings_for(flags)
    bastion_logging.configure(settings.log_level, json=settings.log_json)
    await migrate.upgrade(settings.effective_database_url)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        work = Workload(app)
        await work.prepare(flags)
        run = work.refresh if target == "refresh" else work.login
        await run(_WARMUP)
        callgrind.ready(flags)
        await run(n)
        callgrind.done(flags)


def _drive_hash(n: int, flags: Path) -> None:
    from bastion.identity.passwords import Argon2Hasher  # noqa: PLC0415

    hasher = Argon2Hasher(settings_for(flags).passwords)
    encoded = hasher.hash(PASSWORD)
    hasher.verify(encoded, PASSWORD)
    callgrind.ready(flags)
    for _ in range(n):
        hasher.verify(encoded, PASSWORD)
    callgrind.done(flags)


def count(target: str, n: int, keep: Path | None = None) -> float:
    """Instructions per request of ``target`` (writer included), in a fresh process; its
    callgrind file copied into ``keep`` when given."""
    return callgrind.count(__spec__.name, [target], n, label=target, keep=keep)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", help=f"some of {', '.join(TARGETS)} (default all)")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--keep", type=Path, help="copy the callgrind files into this folder")
    parser.add_argument("--drive", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        target, n, flags = args.drive
        if target == "hash":
            _drive_hash(int(n), Path(flags))
        else:
            asyncio.run(_drive_app(target, int(n), Path(flags)))
        return
    unknown = set(args.targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is missing: apt-get install -y valgrind")
    counts = {target: count(target, args.requests, args.keep) for target in args.targets or TARGETS}
    print(f"{args.requests} requests per target, instructions per request (all threads)")
    for target, value in counts.items():
        print(f"  {target:<8} {value:14,.0f}")
    if "login" in counts and "hash" in counts:
        print(f"  login beyond its hash: {counts['login'] - counts['hash']:,.0f}")


if __name__ == "__main__":
    main()
