"""A real `bastion serve` for the OpenFGA-compatible API, with an administrator's access token.

The administrator is created as an operator would: the setup token printed by ``bastion serve``,
``POST /v1/setup``, then ``POST /v1/sessions``. Test-only settings: cheap password hashing, an
hour-long access token, no second factor for administrators and no general per-IP/per-user
rate limits (a conformance run sends thousands of requests from one address).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bastion.storage import migrate
from tests.common.server import STARTUP_SECONDS, LiveServer, start_server, stop_server

__all__ = ["AuthzServer", "start_authz_server", "stop_authz_server"]

TOKEN_RE = re.compile(r"bst_setup_[A-Za-z0-9_-]{20,}")
SECRET_KEY = "authz-test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
PASSWORD = "Vivid-otter quarry lantern 42"
EMAIL = "authz-admin@example.com"

TEST_ENV = {
    "BASTION_SECRET_KEY": SECRET_KEY,
    "BASTION_ENV": "test",
    "BASTION_MAILER": "file",
    "BASTION_PASSWORDS__HASH_MEMORY_KIB": "1024",
    "BASTION_PASSWORDS__HASH_TIME_COST": "1",
    "BASTION_PASSWORDS__ALLOW_INSECURE_HASH_PARAMETERS": "true",
    "BASTION_ACCESS_TOKENS__TTL_SECONDS": "3600",
    "BASTION_MFA__REQUIRED_FOR_ADMINS": "false",
    "BASTION_RATELIMIT__POLICIES": json.dumps(
        {"api-ip": {"enabled": False}, "api-user": {"enabled": False}}
    ),
}


@dataclass
class AuthzServer:
    server: LiveServer
    access_token: str

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def _setup_token(server: LiveServer) -> str:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        found = TOKEN_RE.findall(server.stderr)
        if found:
            return str(found[0])
        time.sleep(0.05)
    raise RuntimeError(f"no setup token printed:\n{server.stderr}")


def start_authz_server(data_dir: Path, database_url: str | None = None) -> AuthzServer:
    """Start the server (migrating ``database_url`` first) and log an administrator in."""
    env = dict(TEST_ENV)
    if database_url is not None:
        asyncio.run(migrate.upgrade(database_url))
        env["BASTION_DATABASE_URL"] = database_url
    server = start_server(data_dir, **env)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            setup = client.post(
                "/v1/setup",
                json={
                    "setup_token": _setup_token(server),
                    "email": EMAIL,
                    "password": PASSWORD,
                    "display_name": "Authz Admin",
                },
            )
            setup.raise_for_status()
            session = client.post("/v1/sessions", json={"email": EMAIL, "password": PASSWORD})
            session.raise_for_status()
            return AuthzServer(server, session.json()["access_token"])
    except Exception:
        stop_server(server)
        raise


def stop_authz_server(authz: AuthzServer) -> None:
    stop_server(authz.server)
