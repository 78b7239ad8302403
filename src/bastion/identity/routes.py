"""The identity domain's HTTP API: one ``include`` that mounts every sub-domain's routes."""

from __future__ import annotations

from fastapi import FastAPI

from bastion.identity.accounts import routes as accounts_routes
from bastion.identity.admin import routes as admin_routes
from bastion.identity.services import IdentityServices
from bastion.identity.sessions import routes as sessions_routes
from bastion.identity.tokens import routes as tokens_routes

__all__ = ["include"]


def include(app: FastAPI, identity: IdentityServices) -> None:
    principal = identity.authenticator.dependency()
    accounts_routes.include(app, identity, principal)
    sessions_routes.include(app, identity, principal)
    tokens_routes.include(app, identity.signing)
    admin_routes.include(app, identity.admin, principal)
