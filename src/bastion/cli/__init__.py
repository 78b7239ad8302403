"""The ``bastion`` command line: serve, migrate, check, keys, cleanup, version."""

from __future__ import annotations

import typer

from bastion.cli import alerts, audit, check, cleanup, keys, migrate, serve, version

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
app.command("cleanup")(cleanup.cleanup)
app.add_typer(keys.app, name="keys")
app.add_typer(audit.app, name="audit")
app.add_typer(alerts.app, name="alerts")


def main() -> None:
    app()
