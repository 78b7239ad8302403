"""`bastion check`: audit the effective configuration."""

from __future__ import annotations

import json

import typer

from bastion.checks import Severity, run_all
from bastion.cli._common import load_settings


def check(
    as_json: bool = typer.Option(False, "--json", help="One JSON object per finding."),
) -> None:
    """Audit the effective configuration; exit 1 when any finding is high severity."""
    settings = load_settings()
    findings = run_all(settings)
    for finding in findings:
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "code": finding.code,
                        "severity": str(finding.severity),
                        "message": finding.message,
                        "fix": finding.fix,
                        "blocks_production": finding.blocks_production,
                    }
                )
            )
        else:
            typer.echo(f"[{str(finding.severity).upper():6}] {finding.code}: {finding.message}")
            typer.echo(f"         fix: {finding.fix}")
    high = sum(1 for f in findings if f.severity >= Severity.HIGH)
    if not as_json:
        typer.echo(f"{len(findings)} finding(s), {high} high (env={settings.env}).")
    if high:
        raise typer.Exit(1)
