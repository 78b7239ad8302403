"""The ``bastion`` command line: serve, migrate, check, keys, version."""

from __future__ import annotations

import typer

from bastion.cli import check, keys, migrate, serve, version

app = typer.Typer(
    name="bastion",
    help="Bastion: a secure-by-default backend core.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("serve")(serve.serve)
app.command("migrate")(migrate.migrate)
app.command("check")(check.check)
app.command("version")(version.version)
app.add_typer(keys.app, name="keys")


def main() -> None:
    app()
