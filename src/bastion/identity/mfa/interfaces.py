"""The seams of multi-factor authentication.

A *factor source* is a kind of second factor kept by another module (WebAuthn passkeys, in
:mod:`bastion.identity.mfa.webauthn`). It registers with
:meth:`bastion.identity.mfa.services.MfaService.register_factor_source` so that the policy
(does this user have a second factor?), the login challenge (which methods may complete it?)
and the admin reset (remove every factor) know about it. A source that can also answer
:class:`SyncEnrollment` lets a password login ask it inside the transaction that starts the
session (one unit of work instead of two; without it, logins ask ``is_enrolled`` first).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from sqlalchemy import ColumnElement, Connection
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["FactorSource", "FactorVerifier", "SqlEnrollment", "SyncEnrollment"]

#: Verifies a second factor *inside* the transaction that consumes a login challenge (or
#: records a step-up): called with that connection and the user id; returns normally when the
#: factor is proven and raises (``InvalidMfaCode``, or the factor's own ``MfaError``) when not.
#: Raising rolls the transaction back: the challenge stays unused, the failure is counted.
FactorVerifier = Callable[[AsyncConnection, str], Awaitable[None]]


class FactorSource(Protocol):
    """A kind of second factor stored outside this package."""

    #: Short name for audit details (``"webauthn"``).
    name: str
    #: The ``amr`` values its verification can produce (``("hwk", "swk")``).
    methods: tuple[str, ...]

    async def is_enrolled(self, connection: AsyncConnection, user_id: str) -> bool:
        """True if the user holds at least one usable factor of this kind."""
        ...

    async def remove_all(self, connection: AsyncConnection, user_id: str) -> int:
        """Delete every factor of this kind of the user (admin reset) in the caller's
        transaction; returns how many were removed."""
        ...


@runtime_checkable
class SyncEnrollment(Protocol):
    """Optional for a :class:`FactorSource`: ``is_enrolled`` on a synchronous connection."""

    def holds_factor(self, connection: Connection, user_id: str) -> bool:
        """The same answer as ``is_enrolled``, in the caller's transaction (SQLAlchemy's
        synchronous API inside :meth:`bastion.storage.Database.transaction`: no blocking
        I/O of its own)."""
        ...


@runtime_checkable
class SqlEnrollment(Protocol):
    """Optional for a :class:`SyncEnrollment` source: ``is_enrolled`` as a SQL condition, so a
    password login folds it into the statement that starts its session (see
    :meth:`bastion.identity.mfa.services.MfaService.factor_conditions`) and the service asks
    it with every other factor in one statement (:mod:`bastion.identity.mfa.enrolled`)."""

    def enrolled_condition(self) -> ColumnElement[bool]:
        """True exactly when ``holds_factor`` is, for the user of the bound parameter ``uid``
        (an ``EXISTS`` of the source's own table, no other parameter)."""
        ...
