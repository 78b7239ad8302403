"""`bastion keys`: rotation from the command line, seen by a running server's JWK Set."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
from tests.common.cli import run_cli
from tests.common.server import bastion_env, start_server, stop_server


def test_rotate_then_list(tmp_path: Path) -> None:
    env = bastion_env(tmp_path, BASTION_SECRET_KEY="k" * 48)
    assert run_cli(["migrate"], env).returncode == 0
    first = run_cli(["keys", "rotate"], env)
    assert first.returncode == 0, first.stderr
    second = run_cli(["keys", "rotate"], env)
    kid = second.stdout.strip().rsplit(" ", 1)[-1]
    listed = [
        json.loads(line) for line in run_cli(["keys", "list", "--json"], env).stdout.splitlines()
    ]
    states = {key["kid"]: key["state"] for key in listed}
    assert states[kid] == "active"
    assert sorted(states.values()) == ["active", "retired"]
    assert all("d" not in key and "sealed" not in json.dumps(key) for key in listed)


def test_unmigrated_database_is_refused(tmp_path: Path) -> None:
    result = run_cli(["keys", "rotate"], bastion_env(tmp_path, BASTION_SECRET_KEY="k" * 48))
    assert result.returncode == 2
    assert "bastion migrate" in result.stderr


def test_a_running_server_publishes_the_rotated_key(tmp_path: Path) -> None:
    env = {"BASTION_SECRET_KEY": "k" * 48}
    server = start_server(tmp_path, **env)
    try:
        before = {k["kid"] for k in httpx.get(f"{server.url}/.well-known/jwks.json").json()["keys"]}
        result = run_cli(["keys", "rotate"], bastion_env(tmp_path, **env))
        assert result.returncode == 0, result.stderr
        kid = result.stdout.strip().rsplit(" ", 1)[-1]
        # The server reloads its keys within seconds; the JWK Set has both keys meanwhile.
        deadline = time.monotonic() + 15
        while True:
            keys = httpx.get(f"{server.url}/.well-known/jwks.json").json()["keys"]
            if kid in {k["kid"] for k in keys}:
                break
            assert time.monotonic() < deadline, keys
            time.sleep(0.5)
        assert before <= {k["kid"] for k in keys}
    finally:
        stop_server(server)
