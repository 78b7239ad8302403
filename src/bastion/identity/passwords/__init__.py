"""Passwords: Argon2id hashing (with legacy import), a bounded hashing pool, and the NIST SP
800-63B policy.

Most callers need only :class:`PasswordService`::

    service = PasswordService(settings.passwords)
    decision = await service.check_new_password(pw, user=UserInfo(email=email))
    if decision.ok:
        stored = await service.hash(pw)
    result = await service.verify(stored_or_none, pw)    # None for an unknown account
    if result.ok and result.needs_rehash:
        stored = await service.hash(pw)                   # rehash on login
"""

from bastion.identity.passwords.audits import audit_password_settings
from bastion.identity.passwords.breach import HibpBreachChecker, InMemoryBreachChecker
from bastion.identity.passwords.errors import (
    BreachCheckUnavailable,
    HashingOverloaded,
    InvalidStoredHash,
    PasswordError,
    PasswordTooLong,
)
from bastion.identity.passwords.hashing import Argon2Hasher, identify
from bastion.identity.passwords.interfaces import (
    BreachChecker,
    HashScheme,
    PasswordHasher,
    VerifyResult,
)
from bastion.identity.passwords.normalization import MAX_PASSWORD_BYTES
from bastion.identity.passwords.policy import (
    Accepted,
    PasswordPolicy,
    PolicyDecision,
    Rejected,
    RejectionReason,
    UserInfo,
)
from bastion.identity.passwords.pool import HashingPool
from bastion.identity.passwords.services import PasswordService
from bastion.identity.passwords.settings import PasswordSettings

__all__ = [
    "MAX_PASSWORD_BYTES",
    "Accepted",
    "Argon2Hasher",
    "BreachCheckUnavailable",
    "BreachChecker",
    "HashScheme",
    "HashingOverloaded",
    "HashingPool",
    "HibpBreachChecker",
    "InMemoryBreachChecker",
    "InvalidStoredHash",
    "PasswordError",
    "PasswordHasher",
    "PasswordPolicy",
    "PasswordService",
    "PasswordSettings",
    "PasswordTooLong",
    "PolicyDecision",
    "Rejected",
    "RejectionReason",
    "UserInfo",
    "VerifyResult",
    "audit_password_settings",
    "identify",
]
