"""The `bastion` command line, run as a user runs it: real processes, real sockets."""

from __future__ import annotations

import json
import re
import ssl
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from alembic.script import ScriptDirectory
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.common.cli import run_cli, run_process
from tests.common.server import LiveServer, bastion_env, start_server, stop_server

from bastion.http.middleware.security_headers import DEFAULT_HEADERS
from bastion.storage.migrate import MIGRATIONS_DIR

TOKEN_RE = re.compile(r"bst_setup_[A-Za-z0-9_-]{20,}")


def test_version(tmp_path: Path) -> None:
    result = run_process(["version"], bastion_env(tmp_path))
    assert result.returncode == 0
    assert result.stdout.startswith("bastion ")


def test_serve_prints_setup_token_once_and_serves(live_server: LiveServer) -> None:
    response = httpx.get(f"{live_server.url}/healthz")
    assert response.status_code == 200
    assert "server" not in response.headers
    # Served by Bastion's protocol, the security headers travel as one pre-validated block
    # (bastion.http.header_block): each one is still there, exactly once.
    for name, value in DEFAULT_HEADERS:
        assert response.headers.get_list(name) == [value], name
    assert len(response.headers.get_list("x-request-id")) == 1
    tokens = TOKEN_RE.findall(live_server.stderr)
    assert len(tokens) == 1


def test_setup_token_is_stored_hashed(live_server: LiveServer, tmp_path: Path) -> None:
    token = TOKEN_RE.findall(live_server.stderr)[0]
    db = Path(live_server.stderr_path).parent / "bastion.db"
    assert db.exists()
    for path in db.parent.glob("bastion.db*"):
        assert token.encode() not in path.read_bytes()


def test_check_reports_findings_and_exit_code(tmp_path: Path) -> None:
    ok = run_cli(["check"], bastion_env(tmp_path, BASTION_SECRET_KEY="k" * 48))
    assert ok.returncode == 0, ok.stdout
    assert "docs_enabled" in ok.stdout
    bad = run_cli(["check", "--json"], bastion_env(tmp_path, BASTION_DEBUG="true"))
    assert bad.returncode == 1
    findings = [json.loads(line) for line in bad.stdout.splitlines()]
    codes = {f["code"]: f for f in findings}
    assert codes["debug_on"]["severity"] == "high"
    assert codes["debug_on"]["fix"]


def test_check_warns_when_opentelemetry_exports_query_strings(tmp_path: Path) -> None:
    key = "k" * 48
    default = run_cli(["check", "--json"], bastion_env(tmp_path, BASTION_SECRET_KEY=key))
    assert "otel_exports_query_strings" not in default.stdout
    on = run_cli(
        ["check", "--json"],
        bastion_env(tmp_path, BASTION_SECRET_KEY=key, BASTION_OTEL_ENABLED="true"),
    )
    assert on.returncode == 0, on.stdout
    codes = {f["code"]: f for f in map(json.loads, on.stdout.splitlines())}
    assert codes["otel_exports_query_strings"]["severity"] == "medium"
    assert codes["otel_exports_query_strings"]["blocks_production"] is False


def test_invalid_setting_is_a_clear_error(tmp_path: Path) -> None:
    result = run_cli(["check"], bastion_env(tmp_path, BASTION_PORT="eighty"))
    assert result.returncode == 2
    assert "BASTION_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_production_refuses_insecure_settings(tmp_path: Path) -> None:
    result = run_process(
        ["serve", "--port", "1"],
        bastion_env(tmp_path, BASTION_ENV="production", BASTION_DEBUG="true"),
    )
    assert result.returncode == 2
    for code in ("secret_key_missing", "debug_on", "docs_enabled"):
        assert code in result.stderr
    assert "Traceback" not in result.stderr


def test_migrate_sqlite_and_postgres(tmp_path: Path, database_url: str) -> None:
    env = bastion_env(tmp_path, BASTION_DATABASE_URL=database_url)
    result = run_cli(["migrate"], env)
    assert result.returncode == 0, result.stderr
    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    assert f"database at revision {head}" in result.stdout
    again = run_cli(["migrate"], env)
    assert again.returncode == 0, again.stderr


def test_serve_refuses_an_unmigrated_postgres(tmp_path: Path, database_url: str) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite is migrated by serve itself")
    result = run_process(
        ["serve", "--port", "1"], bastion_env(tmp_path, BASTION_DATABASE_URL=database_url)
    )
    assert result.returncode == 2
    assert "bastion migrate" in result.stderr
    assert "Traceback" not in result.stderr


def test_production_server_hides_docs(tmp_path: Path) -> None:
    server = start_server(
        tmp_path,
        BASTION_ENV="production",
        BASTION_SECRET_KEY="p" * 48,
        BASTION_DOCS_ENABLED="false",
        BASTION_ALLOWED_HOSTS="127.0.0.1",
    )
    try:
        for path in ("/docs", "/openapi.json"):
            response = httpx.get(f"{server.url}{path}")
            assert response.status_code == 404
            assert response.headers["content-type"].startswith("application/problem+json")
    finally:
        stop_server(server)


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _client_context(version: ssl.TLSVersion) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # self-signed test certificate
    with warnings.catch_warnings():
        # Python deprecates TLS 1.1 itself; this test uses it on purpose, as an attacker would.
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = version
        ctx.maximum_version = version
    # Let the client offer old versions so the server's floor is what refuses them.
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    return ctx


def test_tls_serves_https_with_hsts_and_refuses_tls_1_1(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server = start_server(tmp_path, "--tls-cert", str(cert), "--tls-key", str(key), scheme="https")
    try:
        with httpx.Client(verify=_client_context(ssl.TLSVersion.TLSv1_2)) as client:
            response = client.get(f"{server.url}/healthz")
        assert response.status_code == 200
        assert response.headers["strict-transport-security"].startswith("max-age=")
        with (
            pytest.raises(httpx.ConnectError),
            httpx.Client(verify=_client_context(ssl.TLSVersion.TLSv1_1)) as old,
        ):
            old.get(f"{server.url}/healthz")
    finally:
        stop_server(server)
