"""Passkeys as a kind of second factor known to the MFA service
(:class:`bastion.identity.mfa.interfaces.FactorSource`): the enrollment policy, the login
challenge and an administrator's MFA reset see them."""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from bastion.identity.mfa.webauthn.credentials import CredentialStore
from bastion.identity.mfa.webauthn.models import webauthn_credentials
from bastion.identity.tokens.claims import AuthMethod

__all__ = ["PasskeyFactor"]

_c = webauthn_credentials.c
#: Built once (every password login asks): whether the user holds a passkey.
_ANY_PASSKEY = select(_c.id).where(_c.user_id == bindparam("uid")).limit(1)


class PasskeyFactor:
    """A user is enrolled when they hold at least one passkey."""

    name = "webauthn"
    methods: tuple[str, ...] = (AuthMethod.HARDWARE_KEY.value, AuthMethod.SOFTWARE_KEY.value)

    def __init__(self, credentials: CredentialStore) -> None:
        self.credentials = credentials

    async def is_enrolled(self, connection: AsyncConnection, user_id: str) -> bool:
        return (await connection.execute(_ANY_PASSKEY, {"uid": user_id})).first() is not None

    async def remove_all(self, connection: AsyncConnection, user_id: str) -> int:
        return await self.credentials.delete_all(connection, user_id)
