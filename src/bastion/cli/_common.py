"""Helpers shared by the CLI commands."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer
from pydantic import ValidationError

from bastion.config.errors import ConfigError
from bastion.config.settings import Settings

#: Exit status for a configuration that cannot be used (distinct from check's 1 for findings).
EXIT_CONFIG = 2


def fail(message: str) -> NoReturn:
    typer.echo(f"bastion: {message}", err=True)
    raise typer.Exit(EXIT_CONFIG)


def load_settings() -> Settings:
    """Read settings, turning validation errors into a readable message (no secrets shown)."""
    try:
        return Settings()
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            lines.append(f"  BASTION_{field.upper()}: {err['msg']}")
        fail("invalid settings:\n" + "\n".join(lines))
    except ConfigError as exc:
        fail(str(exc))


def is_tty() -> bool:
    return sys.stdout.isatty()
