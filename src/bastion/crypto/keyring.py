"""Purpose-bound subkeys derived from the root secret key (HKDF-SHA256, RFC 5869).

One root secret (``BASTION_SECRET_KEY``) feeds every keyed mechanism, so each use gets its own
subkey: ``HKDF(root, salt=SALT, info="bastion/v1/<purpose>")``. Keys for different purposes are
independent: learning one (say, from a bug in CSRF handling) reveals nothing about another (the
key that encrypts private signing keys at rest), and a value made for one purpose never verifies
or decrypts under another (cross-protocol attacks).

Rules for :class:`KeyPurpose`: add a member for every new use; never reuse, rename or repurpose a
value, because the value *is* the derivation label and changing it changes the key.

Rotation of the root key: pass the old roots as ``previous``. :meth:`Keyring.versions` yields the
current subkey first, then the old ones, each with a short key id, so data written under an old
root still opens (see :mod:`bastion.crypto.envelope`) until it is re-encrypted.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import SecretStr

from bastion.crypto.errors import KeyringError
from bastion.crypto.hazmat import hkdf_sha256

__all__ = [
    "DEFAULT_KEY_BYTES",
    "KEY_ID_BYTES",
    "MIN_ROOT_KEY_BYTES",
    "DerivedKey",
    "KeyPurpose",
    "Keyring",
    "RootKey",
    "derive_key",
    "derive_key_id",
]

#: A root shorter than this cannot hold enough entropy for any derived key. Production demands
#: more (32 bytes, enforced by the config gate); this floor only refuses the plainly broken.
MIN_ROOT_KEY_BYTES = 16
#: 256-bit subkeys by default (AES-256, HMAC-SHA256).
DEFAULT_KEY_BYTES = 32
#: Subkeys between 128 and 512 bits; anything else is a programming error.
MIN_KEY_BYTES = 16
MAX_KEY_BYTES = 64
#: Key ids are public labels that select a key; 32 bits tell a handful of roots apart.
KEY_ID_BYTES = 4
#: A fixed, public HKDF salt (RFC 5869 §3.1): domain-separates Bastion's derivations from any
#: other HKDF use of the same secret. It need not be secret.
SALT = b"bastion-keyring"
_LABEL_PREFIX = "bastion/v1/"

RootKey = SecretStr | bytes


class KeyPurpose(enum.StrEnum):
    """What a derived key is for. The value is the HKDF ``info`` label: never change one."""

    #: :mod:`bastion.crypto.envelope`: secrets at rest (private signing keys, TOTP secrets).
    SECRETS_AT_REST = "secrets-at-rest"
    #: Tamper-evident chaining of audit records.
    AUDIT_CHAIN = "audit-chain"
    #: MACs of CSRF tokens.
    CSRF = "csrf"
    #: MACs of values the server hands out and must recognise again (signed cookies, state).
    SIGNED_VALUES = "signed-values"
    #: Pseudonyms of devices and networks in the monitoring counters (bastion.monitoring).
    MONITORING = "monitoring"


@dataclass(frozen=True, slots=True)
class DerivedKey:
    """A subkey and its public id. The key bytes never appear in ``repr``."""

    key_id: bytes
    key: bytes = field(repr=False)


def _root_bytes(root: RootKey) -> bytes:
    raw = root.get_secret_value().encode("utf-8") if isinstance(root, SecretStr) else root
    if len(raw) < MIN_ROOT_KEY_BYTES:
        raise KeyringError(f"The root secret key must be at least {MIN_ROOT_KEY_BYTES} bytes.")
    return raw


def _info(purpose: KeyPurpose, suffix: str = "") -> bytes:
    return f"{_LABEL_PREFIX}{KeyPurpose(purpose).value}{suffix}".encode("ascii")


def derive_key(root: RootKey, purpose: KeyPurpose, length: int = DEFAULT_KEY_BYTES) -> bytes:
    """Return the ``length``-byte subkey of ``root`` for ``purpose``.

    Deterministic: the same root and purpose always give the same key. Raises
    :class:`KeyringError` for a root shorter than :data:`MIN_ROOT_KEY_BYTES`.
    """
    if not MIN_KEY_BYTES <= length <= MAX_KEY_BYTES:
        raise ValueError(f"derived keys are {MIN_KEY_BYTES}..{MAX_KEY_BYTES} bytes")
    return hkdf_sha256(_root_bytes(root), salt=SALT, info=_info(purpose), length=length)


def derive_key_id(root: RootKey, purpose: KeyPurpose) -> bytes:
    """Return the public id of ``root``'s subkey for ``purpose``.

    Derived with its own label, so publishing it (it is stored beside every ciphertext) reveals
    nothing about the key itself.
    """
    return hkdf_sha256(
        _root_bytes(root), salt=SALT, info=_info(purpose, "/key-id"), length=KEY_ID_BYTES
    )


class Keyring:
    """The current root secret key and, during a rotation, the previous ones."""

    def __init__(self, current: RootKey, previous: Sequence[RootKey] = ()) -> None:
        self._roots: tuple[RootKey, ...] = (current, *previous)
        for root in self._roots:
            _root_bytes(root)  # fail at startup, not at first use

    def __repr__(self) -> str:
        return f"Keyring(current=**********, previous={len(self._roots) - 1})"

    def derive(self, purpose: KeyPurpose, length: int = DEFAULT_KEY_BYTES) -> bytes:
        """The current root's subkey for ``purpose``."""
        return derive_key(self._roots[0], purpose, length)

    def versions(self, purpose: KeyPurpose, length: int = DEFAULT_KEY_BYTES) -> list[DerivedKey]:
        """Every root's subkey for ``purpose`` with its key id, the current one first.

        Raises :class:`KeyringError` if two roots give the same key id (the same root configured
        twice, or a 1-in-4-billion collision): a key id must select exactly one key.
        """
        keys = [
            DerivedKey(derive_key_id(root, purpose), derive_key(root, purpose, length))
            for root in self._roots
        ]
        if len({key.key_id for key in keys}) != len(keys):
            raise KeyringError("Two configured root keys have the same key id; remove duplicates.")
        return keys
