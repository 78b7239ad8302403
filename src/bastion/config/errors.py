"""Configuration errors.

ConfigError                 settings that cannot be parsed or read
└── InsecureConfigError     production refused to start (lists each finding)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from bastion.errors import BastionError

if TYPE_CHECKING:
    from bastion.checks import Finding


class ConfigError(BastionError):
    code = "config_invalid"
    status = 500
    title = "Invalid configuration"


class InsecureConfigError(ConfigError):
    code = "config_insecure"
    title = "Insecure configuration refused in production"

    def __init__(self, findings: Sequence[Finding]) -> None:
        self.findings = tuple(findings)
        lines = [f"- [{f.code}] {f.message} Fix: {f.fix}" for f in self.findings]
        super().__init__(
            "BASTION_ENV=production refuses to start with these insecure settings:\n"
            + "\n".join(lines)
        )
