"""The built-in authorization model of Bastion's own administration.

Bastion administers itself with its own engine: who may manage users, read the audit trail,
reset a second factor or rotate keys is a check ``system:bastion#can_<operation>@user:<id>``
against this model, stored in a reserved store of the application's authz store (so it is
versioned like any model, and every decision goes to the decision log).

Roles are relations of the one ``system`` object. A role is held permanently (a plain tuple)
or for a while (a tuple with the ``non_expired_grant`` condition, written by an approved
elevation): the engine compares ``current_time``, sent with every check, to the grant's
``grant_time + grant_duration``, so a grant expires by itself, whatever any cache holds.

Ownership: each session, factor and elevation request has an ``owner``; a user may act on
their own, and staff with the matching permission on anyone's. They live in their own tables,
not as tuples: a check sends their ``owner`` and ``system`` as contextual tuples built from the
row (the SDK's ``require(..., contextual=...)``).
"""

from __future__ import annotations

import enum
from functools import cache
from typing import Any

from bastion.authz.model import parse_dsl

__all__ = [
    "CONDITION",
    "SYSTEM_MODEL_DSL",
    "SYSTEM_OBJECT",
    "SYSTEM_STORE_ID",
    "SYSTEM_STORE_NAME",
    "Permission",
    "Role",
    "system_model",
]

#: The reserved store: a fixed ULID (timestamp zero), so every process finds the same one and
#: creating it twice is a no-op.
SYSTEM_STORE_ID = "0000000000000000000SYSTEM0"
SYSTEM_STORE_NAME = "bastion-system"
SYSTEM_OBJECT = "system:bastion"
CONDITION = "non_expired_grant"


class Role(enum.StrEnum):
    """The roles of Bastion's administration (relations of ``system``)."""

    ADMIN = "admin"
    SECURITY_AUDITOR = "security_auditor"
    SUPPORT = "support"


class Permission(enum.StrEnum):
    """Operations on Bastion itself (computed relations of ``system``)."""

    ADMINISTER = "can_administer"  # everything an administrator does (the authz API, alerts)
    MANAGE_USERS = "can_manage_users"  # disable, enable, force a password reset
    READ_USERS = "can_read_users"  # list, search and read accounts
    UNLOCK_USERS = "can_unlock_users"  # clear a login backoff
    REVOKE_SESSIONS = "can_revoke_sessions"  # end every session of a user
    RESET_MFA = "can_reset_mfa"  # remove every second factor of a user
    READ_AUDIT = "can_read_audit"  # query, verify and export the audit trail
    ROTATE_KEYS = "can_rotate_keys"  # rotate signing and encryption keys
    APPROVE_ELEVATIONS = "can_approve_elevations"  # approve or deny a request for a role


SYSTEM_MODEL_DSL = """\
model
  schema 1.1

type user
  relations
    define owner: [user]

type system
  relations
    define admin: [user, user with non_expired_grant]
    define security_auditor: [user, user with non_expired_grant]
    define support: [user, user with non_expired_grant]
    define can_administer: admin
    define can_manage_users: admin
    define can_read_users: admin or support or security_auditor
    define can_unlock_users: admin or support
    define can_revoke_sessions: admin or support
    define can_reset_mfa: admin or support
    define can_read_audit: admin or security_auditor
    define can_rotate_keys: admin
    define can_approve_elevations: admin

type session
  relations
    define system: [system]
    define owner: [user]
    define can_view: owner or can_read_users from system
    define can_revoke: owner or can_revoke_sessions from system

type factor
  relations
    define system: [system]
    define owner: [user]
    define can_view: owner or can_read_users from system
    define can_remove: owner or can_reset_mfa from system

type elevation
  relations
    define system: [system]
    define owner: [user]
    define can_revoke: owner or can_approve_elevations from system

type data
  relations
    define system: [system]
    define owner: [user]
    define can_read: owner or can_manage_users from system
    define can_export: owner
    define can_erase: owner or can_manage_users from system

"""
# A grant is honoured while the request's time is before its start plus its duration.
SYSTEM_MODEL_DSL += (
    "condition non_expired_grant(current_time: timestamp, grant_time: timestamp, "
    "grant_duration: duration) {\n"
    "  current_time < grant_time + grant_duration\n"
    "}\n"
)


@cache
def system_model() -> dict[str, Any]:
    """The model in OpenFGA's JSON form, parsed by Bastion's own parser.

    Not validated here: every process parses it at startup, and validating compiles its
    condition with the CEL library (~7 MiB of memory a worker otherwise never needs). Storing
    it validates it (:meth:`AuthzService.write_model`), and the engine compiles it on the first
    administrative check; a unit test validates it on every change."""
    return parse_dsl(SYSTEM_MODEL_DSL)
