"""The serving process of `bastion serve`, kept lean.

`bastion serve` prepares in its own process (production gate, migrations, setup token: the
CLI framework, Alembic and every service get imported for that), then replaces itself with
``python -m bastion.server`` through ``exec``: same pid, same environment, same terminal,
but an interpreter that never imported the CLI or the migration tooling. Those modules cannot be
unloaded from a running interpreter, and they held about a fifth of an idle worker's memory.

The options travel in ``BASTION_*`` environment variables (``serve`` sets them), except the
worker count, which is this module's one argument.
"""

from __future__ import annotations

import os
import ssl
import sys

import uvicorn

__all__ = ["MIN_TLS_VERSION", "HardenedConfig", "exec_server", "main"]

#: TLS 1.0 and 1.1 are deprecated (RFC 8996); nothing older than 1.2 is ever negotiated.
MIN_TLS_VERSION = ssl.TLSVersion.TLSv1_2
#: glibc malloc settings for the server process (see :func:`exec_server`).
_MALLOC_TUNING = (
    ("MALLOC_MMAP_THRESHOLD_", "131072"),
    ("MALLOC_ARENA_MAX", "2"),
    ("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1"),
)


class HardenedConfig(uvicorn.Config):
    """uvicorn's config with a TLS floor (uvicorn exposes no minimum-version option)."""

    def load(self) -> None:
        super().load()
        if self.ssl is not None:
            self.ssl.minimum_version = MIN_TLS_VERSION


def _config(workers: int) -> HardenedConfig:
    # Read again from the environment: the same values `serve` validated before the exec.
    from bastion import logging as bastion_logging  # noqa: PLC0415
    from bastion.config.settings import Settings  # noqa: PLC0415 - after uvicorn, once
    from bastion.http.protocol import HttpToolsProtocol  # noqa: PLC0415

    settings = Settings()
    # The supervisor of several workers logs too (a worker that died and was replaced).
    bastion_logging.configure(settings.log_level, json=settings.log_json)
    return HardenedConfig(
        "bastion.asgi:app_from_env",
        factory=True,
        # uvicorn's httptools protocol, plus the header-block extension (bastion.http.protocol).
        http=HttpToolsProtocol,
        host=settings.host,
        port=settings.port,
        workers=workers,
        ssl_certfile=str(settings.tls_certfile) if settings.tls_certfile else None,
        ssl_keyfile=str(settings.tls_keyfile) if settings.tls_keyfile else None,
        # Bastion decides which proxies to trust itself (settings.trusted_proxies).
        proxy_headers=False,
        server_header=False,
        access_log=False,
        log_config=None,
        timeout_keep_alive=5,
        lifespan="on",
    )


def main(argv: list[str]) -> None:
    workers = int(argv[0]) if argv else 1
    if not 1 <= workers <= 64:  # `serve` validated it: only a hand-made call gets here
        raise SystemExit("workers must be between 1 and 64")
    config = _config(workers)
    if workers == 1:
        uvicorn.Server(config).run()
        return
    from uvicorn.supervisors import Multiprocess  # noqa: PLC0415 - only with --workers > 1

    sock = config.bind_socket()
    Multiprocess(config, sockets=[sock]).run()


def exec_server(workers: int) -> None:
    """Replaces the current process with the lean server (never returns)."""
    sys.stdout.flush()
    sys.stderr.flush()
    # glibc reads its malloc tuning at start-up, so a fresh interpreter is the one place to set
    # it (an operator's own values win). Each Argon2 hash takes its 19+ MiB with malloc; with the
    # default *dynamic* mmap threshold, glibc keeps such blocks in per-thread heaps after the
    # first one is freed, so every hashing thread would hold a hash's memory for good. A fixed
    # threshold returns them to the system when the hash ends; two arenas bound the heaps kept
    # by the hashing and SQLite threads. The price is fresh pages for every hash: with 4 KiB
    # pages, ~4,900 page faults and ~11 ms of system CPU per hash (half again the hash's own
    # 20 ms). `hugetlb=1` has glibc ask for transparent huge pages on those mappings (where the
    # kernel's THP mode is `madvise` or `always`; glibc 2.35+): 300-800 faults and ~3.5 ms.
    # Keeping the buffer for the next hash instead (thresholds above it) removes the faults but
    # not reliably the memory: in an arena shared with the event loop's allocations it was cut
    # up and a second 19 MiB grew beside it in some runs, held for good (measured 2026-11-28,
    # docs/benchmarks.md). Since 2026-11-29 hashes at the configured parameters run in buffers
    # of their own instead, mapped once and reused (identity/passwords/scratch.py): these
    # settings still govern every other large block, and hashes outside that path.
    for name, value in _MALLOC_TUNING:
        os.environ.setdefault(name, value)
    # Our own interpreter and module, with a fixed argument list: no shell, no user input.
    argv = [sys.executable, "-m", "bastion.server", str(workers)]
    os.execv(sys.executable, argv)  # noqa: S606  # nosec B606


if __name__ == "__main__":
    main(sys.argv[1:])
