from __future__ import annotations

import typer

from bastion import __version__


def version() -> None:
    """Print Bastion's version."""
    typer.echo(f"bastion {__version__}")
