"""Real TLS through the vetting backend: the socket goes to the checked address, while SNI and
certificate verification still use the URL's name (so connecting by address loses nothing)."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bastion.outbound import OutboundClient, OutboundSettings, OutboundTransportFailed, StubResolver

NAME = "hooks.test"


def _signed(
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_name: x509.Name,
    *,
    san: str | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=san is None, path_length=None), critical=True)
    )
    if san is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False
        )
    return builder.sign(ca_key, hashes.SHA256())


@asynccontextmanager
async def tls_server(tmp_path: Path) -> AsyncIterator[tuple[int, list[str | None], ssl.SSLContext]]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    ca = _signed(ca_name, ca_key.public_key(), ca_key, ca_name)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAME)])
    leaf = _signed(leaf_name, leaf_key.public_key(), ca_key, ca_name, san=NAME)
    cert_file, key_file = tmp_path / "leaf.pem", tmp_path / "leaf.key"
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_file, key_file)
    names: list[str | None] = []
    server_context.sni_callback = lambda _sock, name, _ctx: names.append(name)  # type: ignore[assignment,func-returns-value]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_context)
    client_context = ssl.create_default_context(
        cadata=ca.public_bytes(serialization.Encoding.PEM).decode()
    )
    try:
        yield server.sockets[0].getsockname()[1], names, client_context
    finally:
        server.close()
        await server.wait_closed()


def _client(port: int, context: ssl.SSLContext, table: dict[str, list[str]]) -> OutboundClient:
    settings = OutboundSettings(allowed_ports=[port], allow_loopback_for_tests=True)
    return OutboundClient(settings, resolver=StubResolver(table), ssl_context=context)


async def test_tls_goes_to_the_checked_address_with_sni_for_the_name(tmp_path: Path) -> None:
    async with tls_server(tmp_path) as (port, names, context):
        client = _client(port, context, {NAME: ["127.0.0.1"]})
        response = await client.get(f"https://{NAME}:{port}/")
        await client.aclose()
    assert response.body == b"ok"
    assert names == [NAME]


async def test_the_certificate_is_still_checked_against_the_name(tmp_path: Path) -> None:
    # Same address, another name: the server's certificate does not cover it.
    async with tls_server(tmp_path) as (port, _, context):
        client = _client(port, context, {"other.test": ["127.0.0.1"]})
        with pytest.raises(OutboundTransportFailed):
            await client.get(f"https://other.test:{port}/")
        await client.aclose()


def test_a_context_that_skips_verification_is_refused() -> None:
    lax = ssl.create_default_context()
    lax.check_hostname = False
    with pytest.raises(ValueError, match="verify"):
        OutboundClient(OutboundSettings(), ssl_context=lax)
