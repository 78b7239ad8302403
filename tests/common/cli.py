"""The ``bastion`` command in tests: in this process (Typer's CliRunner), or as its own process.

A ``bastion`` process spends ~2.5-3 s of CPU on a slow host importing before it does anything,
and the CLI tests run some fifty commands. In the test's process the imports are done once, so
a command costs what it does. :func:`run_cli` runs the command's own code, from argument parsing
to exit code, with the environment the test gives it; what only a process has (the console
script, the interpreter's exit status, ``serve``) is covered by the tests that still start
``bastion`` processes (:func:`run_process`: ``bastion version``, ``bastion serve``, the servers
of tests/common/server.py).

A command configures logging (structlog and the root logger) onto the runner's captured streams,
which are closed once it returns: the configuration from before is put back after each command.
"""

from __future__ import annotations

import logging
import os
import subprocess
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import structlog
from typer.testing import CliRunner

from bastion import logging as bastion_logging
from bastion.cli import app
from tests.common.server import BASTION

#: Loggers whose handlers bastion.logging.configure clears.
_CONFIGURED_LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "alembic")


@dataclass(frozen=True)
class CliResult:
    """What a finished command left, as ``subprocess.CompletedProcess`` names it."""

    returncode: int
    stdout: str
    stderr: str


@contextmanager
def _logging_restored() -> Iterator[None]:
    structlog_config = structlog.get_config() if structlog.is_configured() else None
    loggers = {
        name: (list(logger.handlers), logger.level, logger.propagate)
        for name in _CONFIGURED_LOGGERS
        for logger in (logging.getLogger(name),)
    }
    pipeline = bastion_logging._PIPELINE
    try:
        yield
    finally:
        if structlog_config is None:
            structlog.reset_defaults()
        else:
            structlog.configure(**structlog_config)
        for name, (handlers, level, propagate) in loggers.items():
            logger = logging.getLogger(name)
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate
        bastion_logging._PIPELINE = pipeline


def run_cli(args: list[str], env: Mapping[str, str]) -> CliResult:
    """``bastion *args`` in this process, with exactly the environment ``env`` (variables of this
    process that ``env`` lacks are unset for the command)."""
    changes: dict[str, str | None] = {name: None for name in os.environ if name not in env}
    changes.update(env)
    with _logging_restored():
        result = CliRunner().invoke(app, args, env=changes, catch_exceptions=True)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        # As the interpreter would print it: the command crashed.
        assert result.exc_info is not None
        stderr += "".join(traceback.format_exception(*result.exc_info))
    return CliResult(result.exit_code, result.stdout, stderr)


def run_process(
    args: list[str], env: Mapping[str, str], *, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``bastion *args`` as its own process (the console script)."""
    return subprocess.run(  # noqa: S603 - our own CLI
        [BASTION, *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
