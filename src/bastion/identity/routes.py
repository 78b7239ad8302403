"""The identity domain's HTTP API: one ``include`` that mounts every sub-domain's routes."""

from __future__ import annotations

from fastapi import FastAPI

from bastion.identity.accounts import routes as accounts_routes
from bastion.identity.admin import routes as admin_routes
from bastion.identity.mfa import routes as mfa_routes
from bastion.identity.mfa.webauthn import page as passkeys_page
from bastion.identity.mfa.webauthn import routes as webauthn_routes
from bastion.identity.services import IdentityServices
from bastion.identity.sessions import routes as sessions_routes
from bastion.identity.tokens import routes as tokens_routes

__all__ = ["include"]


def include(app: FastAPI, identity: IdentityServices) -> None:
    # The authenticator plus the MFA enrollment policy: every route authenticates through it.
    principal = identity.principal
    accounts_routes.include(app, identity, principal)
    sessions_routes.include(app, identity, principal)
    tokens_routes.include(app, identity.signing)
    admin_routes.include(app, identity.admin, principal, identity.step_up)
    mfa_routes.include(app, identity)
    webauthn_routes.include(app, identity, identity.webauthn)
    if identity.settings.webauthn.page_enabled:
        passkeys_page.include(app)
