"""The list of modules that define tables: import them all to see the whole schema.

Alembic's ``env.py`` and the schema tests call :func:`load_metadata`; a domain that adds a
``models.py`` adds it to :data:`MODEL_MODULES`, and the migration-parity test then fails until
a migration creates its tables.
"""

from __future__ import annotations

import importlib

from sqlalchemy import MetaData

from bastion.storage.base import Base

MODEL_MODULES: tuple[str, ...] = (
    "bastion.audit.models",
    "bastion.identity.models",
    "bastion.identity.accounts.models",
    "bastion.identity.sessions.models",
    "bastion.identity.tokens.models",
    "bastion.identity.mail.models",
    "bastion.authz.store.models",
    "bastion.authz.builtin.models",
    "bastion.identity.mfa.models",
    "bastion.identity.mfa.webauthn.models",
    "bastion.monitoring.models",
    "bastion.privacy.models",
)


def load_metadata() -> MetaData:
    """Import every model module and return the shared metadata holding all their tables."""
    for name in MODEL_MODULES:
        importlib.import_module(name)
    return Base.metadata
