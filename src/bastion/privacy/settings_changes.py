"""Configuration changes: which settings differ from the previous start (accountability).

At each start the effective settings are reduced to one keyed digest per setting (dotted names
for nested groups: ``ratelimit.storage``), HMAC-SHA256 under a key derived from the secret key.
When the set differs from the last one stored in ``config_fingerprints`` (or there is none: the
first start), a row is added and ``config:settings:changed`` is recorded with the *names* of
the changed settings (none at the first start, ``details.first_start``: the baseline). No
value is ever stored or recorded, secret or not: a digest tells that a value changed, and
without the secret key it cannot be checked against a guess (a plain hash of a short setting
such as a port or a weak SMTP password could be brute-forced). A secret that is
unset and one that is set digest differently, so setting or clearing one shows too.

A new secret key changes every digest: the row records the key's public id, and a start under
another key reports ``secret_key`` only (``details.rekeyed``), other changes being undecidable.
Workers starting together (``bastion serve --workers N``) compare and store one at a time
(a transaction-scoped advisory lock on PostgreSQL, the database's write lock taken first on
SQLite), so one change is recorded once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from pydantic import SecretBytes as PydanticSecretBytes
from pydantic import SecretStr as PydanticSecretStr
from sqlalchemy import false, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bastion.audit.events import AuditEvent, EventType, Outcome
from bastion.audit.interfaces import AuditRecorder
from bastion.clock import Clock
from bastion.config.secrets import SecretStr
from bastion.crypto.keyring import KeyPurpose, Keyring
from bastion.privacy.models import config_fingerprints
from bastion.storage import Database

__all__ = ["SettingsChanges", "diff", "digests_of"]

#: Domain separation: the subkey is shared with other signed values, the label is not.
_LABEL = b"bastion/settings-fingerprint/v1\x00"
SECRET_KEY_SETTING = "secret_key"  # noqa: S105 - a setting name
SUBJECT = "config:settings"
#: PostgreSQL advisory lock id of the comparison (an arbitrary constant: "bastcfg1").
_LOCK_ID = 0x62617374636667


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in values.items():
        dotted = f"{prefix}{name}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def _encode(value: Any) -> Any:
    if isinstance(value, (PydanticSecretStr, SecretStr)):
        return ["secret", value.get_secret_value()]
    if isinstance(value, PydanticSecretBytes):
        return ["secret", value.get_secret_value().hex()]
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, (set, frozenset)):
        return sorted(map(str, value))
    return str(value)


def digests_of(settings: BaseModel, key: bytes) -> dict[str, str]:
    """One keyed digest per (flattened) setting of ``settings``."""
    flat = _flatten(settings.model_dump())
    result: dict[str, str] = {}
    for name, value in sorted(flat.items()):
        encoded = json.dumps(value, default=_encode, sort_keys=True, separators=(",", ":"))
        message = _LABEL + name.encode() + b"\x00" + encoded.encode()
        result[name] = hmac.new(key, message, hashlib.sha256).hexdigest()
    return result


def diff(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    """Names whose digest differs, or that appear in one set only, sorted."""
    names = set(before) | set(after)
    return sorted(name for name in names if before.get(name) != after.get(name))


def _fingerprint(key_id: str, digests: Mapping[str, str]) -> str:
    canonical = json.dumps([key_id, sorted(digests.items())], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def _one_at_a_time(connection: AsyncConnection) -> None:
    """Holds the comparison's lock until the transaction ends."""
    if connection.dialect.name == "postgresql":
        await connection.execute(select(func.pg_advisory_xact_lock(_LOCK_ID)))
    else:
        # SQLite: a writing statement first (it changes no row) takes the database's write lock
        # now, for the whole transaction, rather than at the INSERT after the read.
        c = config_fingerprints.c
        await connection.execute(update(config_fingerprints).where(false()).values(id=c.id))


class SettingsChanges:
    """Compares the effective settings with those of the previous start."""

    def __init__(
        self,
        settings: BaseModel,
        *,
        database: Database,
        audit: AuditRecorder,
        clock: Clock,
        keyring: Keyring,
    ) -> None:
        self._settings = settings
        self._database = database
        self._audit = audit
        self._clock = clock
        key = keyring.versions(KeyPurpose.SIGNED_VALUES)[0]
        self._key = key.key
        self._key_id = key.key_id.hex()

    async def check(self) -> list[str] | None:
        """Store and record the settings if they changed; return the changed names (None when
        nothing changed). Raises SQLAlchemyError when the database does not answer."""
        digests = digests_of(self._settings, self._key)
        fingerprint = _fingerprint(self._key_id, digests)
        c = config_fingerprints.c
        last_query = select(c.fingerprint, c.digests).order_by(c.id.desc()).limit(1)
        async with self._database.engine.begin() as connection:
            await _one_at_a_time(connection)
            last = (await connection.execute(last_query)).first()
            if last is not None and hmac.compare_digest(last.fingerprint, fingerprint):
                return None
            stored = {"key_id": self._key_id, "settings": digests}
            await connection.execute(
                insert(config_fingerprints).values(
                    recorded_at=self._clock.now(),
                    fingerprint=fingerprint,
                    digests=json.dumps(stored, sort_keys=True),
                )
            )
        details: dict[str, Any] = {"first_start": last is None, "settings": len(digests)}
        if last is None:
            # Nothing to compare with: the event marks the baseline, not a list of every name.
            changed = []
        else:
            previous = json.loads(last.digests)
            rekeyed = previous.get("key_id") != self._key_id
            changed = [SECRET_KEY_SETTING] if rekeyed else diff(previous["settings"], digests)
            details["rekeyed"] = rekeyed
        details["changed"] = changed
        self._audit.record(
            AuditEvent(
                type=EventType.CONFIG_SETTINGS_CHANGED,
                outcome=Outcome.SUCCESS,
                time=self._clock.now(),
                actor="system",
                subject=SUBJECT,
                details=details,
            )
        )
        return changed
