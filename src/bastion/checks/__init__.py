"""`bastion check`: audits of the effective configuration.

Each domain contributes audit functions (``Settings -> Iterable[Finding]``) with
:func:`register`. The production gate (:func:`bastion.config.production.enforce`) refuses to start
when any finding marked ``blocks_production`` is present, so the CLI and the startup refusal share
one source of truth.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bastion.config.settings import Settings

__all__ = ["Audit", "Finding", "Severity", "register", "run_all"]


class Severity(enum.IntEnum):
    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Finding:
    """One configuration weakness: what is wrong, why it matters, and how to fix it."""

    code: str
    severity: Severity
    message: str
    fix: str
    #: Production refuses to start while this finding is present.
    blocks_production: bool = False


Audit = Callable[["Settings"], Iterable[Finding]]

_AUDITS: list[Audit] = []


def register(audit: Audit) -> Audit:
    """Add an audit to `bastion check` (usable as a decorator)."""
    if audit not in _AUDITS:
        _AUDITS.append(audit)
    return audit


def run_all(settings: Settings) -> list[Finding]:
    """Run every registered audit; findings sorted most severe first."""
    # Importing the audit modules registers them; kept here so `check` sees every domain.
    from bastion.audit import audits as audit_audits  # noqa: F401, PLC0415
    from bastion.authz import audits as authz_audits  # noqa: F401, PLC0415
    from bastion.authz.builtin import audits as builtin_audits  # noqa: F401, PLC0415
    from bastion.config import production  # noqa: F401, PLC0415
    from bastion.identity import audits as identity_audits  # noqa: F401, PLC0415
    from bastion.monitoring import audits as monitoring_audits  # noqa: F401, PLC0415
    from bastion.protections.ratelimit import audits as ratelimit_audits  # noqa: F401, PLC0415

    findings = [finding for audit in _AUDITS for finding in audit(settings)]
    return sorted(findings, key=lambda f: (-f.severity, f.code))
