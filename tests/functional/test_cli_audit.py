"""`bastion audit` from the command line: verify (exit codes), checkpoint export and proof by
an outside party holding the public JWK Set, tampering found in the database file, purge,
search and the catalog check."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from tests.common.cli import run_cli
from tests.common.server import bastion_env

KEY = "k" * 48


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated database with a short chain, made once (each CLI run costs seconds)."""
    data_dir = tmp_path_factory.mktemp("audit-cli")
    environment = bastion_env(data_dir, BASTION_SECRET_KEY=KEY)
    assert run_cli(["migrate"], environment).returncode == 0
    for _ in range(2):  # each rotation records an event
        assert run_cli(["keys", "rotate"], environment).returncode == 0
    return data_dir


@pytest.fixture
def env(prepared: Path, tmp_path: Path) -> dict[str, str]:
    data_dir = tmp_path / "data"
    shutil.copytree(prepared, data_dir)
    return bastion_env(data_dir, BASTION_SECRET_KEY=KEY)


def database(env: dict[str, str]) -> Path:
    return Path(env["BASTION_DATA_DIR"]) / "bastion.db"


def test_verify_an_intact_chain(env: dict[str, str]) -> None:
    result = run_cli(["audit", "verify"], env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("audit chain intact")
    report = json.loads(run_cli(["audit", "verify", "--json"], env).stdout)
    assert report["intact"] is True
    assert report["checked"] >= 2


def test_an_outside_party_proves_the_log_with_an_exported_checkpoint(
    env: dict[str, str], tmp_path: Path
) -> None:
    exported = tmp_path / "checkpoint.json"
    result = run_cli(["audit", "checkpoint", "export", "--create", "-o", str(exported)], env)
    assert result.returncode == 0, result.stderr
    document = json.loads(exported.read_text())
    # The auditor keeps the checkpoint and the JWK Set they fetched from the server.
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(document["jwks"]))
    proof = run_cli(["audit", "verify", "--checkpoint", str(exported), "--jwks", str(jwks)], env)
    assert proof.returncode == 0, proof.stderr
    assert "proven" in proof.stdout
    # Export without --create gives the newest stored checkpoint: the same one.
    latest = json.loads(run_cli(["audit", "checkpoint", "export"], env).stdout)
    assert latest["checkpoint"] == document["checkpoint"]


def test_a_forged_checkpoint_exits_3(env: dict[str, str], tmp_path: Path) -> None:
    exported = tmp_path / "checkpoint.json"
    assert run_cli(["audit", "checkpoint", "create", "-o", str(exported)], env).returncode == 0
    document = json.loads(exported.read_text())
    header, payload, signature = document["checkpoint"].split(".")
    document["checkpoint"] = f"{header}.{payload}.{signature[::-1]}"
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(document))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(document["jwks"]))
    result = run_cli(["audit", "verify", "--checkpoint", str(forged), "--jwks", str(jwks)], env)
    assert result.returncode == 3
    assert "checkpoint invalid" in result.stderr
    garbage = tmp_path / "garbage.json"
    garbage.write_text("not json")
    assert run_cli(["audit", "verify", "--checkpoint", str(garbage)], env).returncode == 3


def test_tampering_in_the_database_file_exits_1(env: dict[str, str]) -> None:
    with sqlite3.connect(database(env)) as connection:
        connection.execute("UPDATE audit_events SET reason = 'nothing to see' WHERE seq = 1")
    result = run_cli(["audit", "verify"], env)
    assert result.returncode == 1
    assert "TAMPERED: modified at seq 1" in result.stdout
    report = json.loads(run_cli(["audit", "verify", "--json"], env).stdout)
    assert report["problem"]["kind"] == "modified"
    assert report["problem"]["seq"] == 1


def test_a_deleted_event_exits_1(env: dict[str, str]) -> None:
    with sqlite3.connect(database(env)) as connection:
        connection.execute("DELETE FROM audit_events WHERE seq = 2")
    result = run_cli(["audit", "verify"], env)
    assert result.returncode == 1
    assert "deleted at seq 2" in result.stdout


def test_an_unmigrated_database_exits_2(tmp_path: Path) -> None:
    result = run_cli(["audit", "verify"], bastion_env(tmp_path, BASTION_SECRET_KEY=KEY))
    assert result.returncode == 2
    assert "bastion migrate" in result.stderr


def test_search_and_purge(env: dict[str, str]) -> None:
    found = run_cli(["audit", "search", "--json", "--type", "token:signing_key:rotated"], env)
    assert found.returncode == 0, found.stderr
    events = [json.loads(line) for line in found.stdout.splitlines()]
    assert len(events) == 2
    assert {e["type"] for e in events} == {"token:signing_key:rotated"}
    assert run_cli(["audit", "search", "--type", "no:such:type"], env).returncode == 2
    assert run_cli(["audit", "search", "--cursor", "forged"], env).returncode == 2
    # Nothing is a year old: purge deletes nothing and the chain still verifies.
    purged = run_cli(["audit", "purge"], env)
    assert purged.returncode == 0, purged.stderr
    assert purged.stdout.startswith("purged 0 event(s)")
    assert run_cli(["audit", "verify"], env).returncode == 0


def test_the_catalog_check(tmp_path: Path) -> None:
    env = bastion_env(tmp_path)
    catalog = tmp_path / "audit-events.md"
    assert run_cli(["audit", "catalog", "--check", "-o", str(catalog)], env).returncode == 1
    assert run_cli(["audit", "catalog", "-o", str(catalog)], env).returncode == 0
    assert run_cli(["audit", "catalog", "--check", "-o", str(catalog)], env).returncode == 0
