"""`bastion check` findings of Bastion's own roles and just-in-time elevation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from bastion.authz.builtin.model import Role
from bastion.checks import Finding, Severity, register

if TYPE_CHECKING:
    from bastion.authz.builtin.system import SystemAuthz
    from bastion.config.settings import Settings

__all__ = ["MAX_RECOMMENDED_ELEVATION_SECONDS", "admin_findings", "audit_elevation"]

#: A working day: longer grants turn just-in-time privilege into standing privilege.
MAX_RECOMMENDED_ELEVATION_SECONDS = 8 * 3600


@register
def audit_elevation(settings: Settings) -> Iterator[Finding]:
    seconds = settings.authz.elevation_max_seconds
    if seconds > MAX_RECOMMENDED_ELEVATION_SECONDS:
        yield Finding(
            code="authz_elevation_too_long",
            severity=Severity.MEDIUM,
            message=(
                f"an approved elevation may last {seconds / 3600:g} h: a time-limited role "
                "becomes a standing one"
            ),
            fix=f"BASTION_AUTHZ__ELEVATION_MAX_SECONDS<={MAX_RECOMMENDED_ELEVATION_SECONDS}",
        )


async def admin_findings(system: SystemAuthz) -> list[Finding]:
    """Findings that need the system store: fewer than two administrators."""
    admins = await system.holders(Role.ADMIN)
    if len(admins) >= 2:
        return []
    return [
        Finding(
            code="authz_single_admin",
            # Medium either way: before the first setup there is no administrator yet, and
            # `bastion check` must not fail a fresh installation.
            severity=Severity.MEDIUM,
            message=(
                "no account holds the admin role (setup not completed, or every admin role "
                "withdrawn): nobody can administer or approve elevations"
                if not admins
                else "only one administrator: nobody can approve their elevation requests, "
                "and losing the account locks administration out"
            ),
            fix="grant the admin role to a second, separate person's account",
        )
    ]
