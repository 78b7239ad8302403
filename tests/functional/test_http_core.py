"""The hardened HTTP core, end to end through the real app and its full middleware stack."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import generate_latest
from sqlalchemy import select

from bastion.audit.events import EventType
from bastion.audit.models import audit_events
from bastion.http.problems import PROBLEM_CONTENT_TYPE

SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_CONTENT_TYPE)
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"urn:bastion:problem:{code}"
    assert body["request_id"] == response.headers["x-request-id"]
    return dict(body)


def assert_security_headers(response: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, name
    assert "permissions-policy" in response.headers
    assert "server" not in response.headers
    assert "x-powered-by" not in response.headers
    assert response.headers.get("cache-control") == "no-store"


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert_security_headers(response)


async def test_readyz_checks_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("GET", "/no/such/path", {}, 404, "not_found"),
        ("DELETE", "/healthz", {}, 405, "method_not_allowed"),
        ("TRACE", "/healthz", {}, 405, "method_not_allowed"),
        ("TRACK", "/healthz", {}, 405, "method_not_allowed"),
        (
            "POST",
            "/test/echo",
            {
                "content": b"name=x",
                "headers": {"content-type": "application/x-www-form-urlencoded"},
            },
            415,
            "unsupported_media_type",
        ),
        (
            "POST",
            "/test/echo",
            {"content": b"<a/>", "headers": {"content-type": "application/xml"}},
            415,
            "unsupported_media_type",
        ),
        (
            "POST",
            "/test/echo",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            400,
            "json_invalid",
        ),
        (
            "POST",
            "/test/echo",
            {"content": b"[" * 5000 + b"]" * 5000, "headers": {"content-type": "application/json"}},
            400,
            "json_too_deep",
        ),
        (
            "POST",
            "/test/echo",
            {
                "content": json.dumps(list(range(20_000))).encode(),
                "headers": {"content-type": "application/json"},
            },
            400,
            "json_too_many_elements",
        ),
        (
            "POST",
            "/test/echo",
            {
                "content": b'{"name": "' + b"x" * (1024 * 1024 + 10) + b'"}',
                "headers": {"content-type": "application/json"},
            },
            413,
            "body_too_large",
        ),
        ("POST", "/test/echo", {"json": {"name": "x", "is_admin": True}}, 422, "validation_failed"),
        ("POST", "/test/echo", {"json": {"name": "x" * 65}}, 422, "validation_failed"),
        ("POST", "/test/echo", {"json": {"name": "x", "count": 10**9}}, 422, "validation_failed"),
    ],
)
async def test_bad_input_gets_problem_json_with_headers(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    kwargs: dict[str, object],
    status: int,
    code: str,
) -> None:
    response = await client.request(method, path, **kwargs)  # type: ignore[arg-type]
    assert_problem(response, status, code)
    assert_security_headers(response)


async def test_405_lists_allowed_methods(client: httpx.AsyncClient) -> None:
    response = await client.delete("/healthz")
    assert "GET" in response.headers.get("allow", "")


async def test_valid_json_reaches_the_route(client: httpx.AsyncClient) -> None:
    response = await client.post("/test/echo", json={"name": "ok", "count": 3})
    assert response.status_code == 200
    assert response.json() == {"name": "ok"}


async def test_mass_assignment_is_rejected(client: httpx.AsyncClient) -> None:
    body = assert_problem(
        await client.post("/test/echo", json={"name": "x", "is_admin": True}),
        422,
        "validation_failed",
    )
    assert body["errors"][0]["loc"] == ["body", "is_admin"]  # type: ignore[index]


async def test_validation_errors_do_not_echo_input(client: httpx.AsyncClient) -> None:
    response = await client.post("/test/echo", json={"name": "hunter2-" * 20})
    assert_problem(response, 422, "validation_failed")
    assert "hunter2" not in response.text


async def test_500_leaks_nothing(client: httpx.AsyncClient) -> None:
    response = await client.get("/test/boom")
    assert_problem(response, 500, "internal_error")
    assert_security_headers(response)
    for fragment in ("SELECT", "password", "/etc/bastion", "RuntimeError", "Traceback"):
        assert fragment not in response.text


async def test_request_id_accepted_when_well_formed(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"x-request-id": "abc-123.DEF_4"})
    assert response.headers["x-request-id"] == "abc-123.DEF_4"
    response = await client.get("/healthz", headers={"x-request-id": "bad id\twith spaces"})
    assert response.headers["x-request-id"] != "bad id\twith spaces"
    assert response.headers["x-request-id"]


async def test_unknown_host_rejected(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"host": "evil.example"})
    assert_problem(response, 400, "host_not_allowed")


async def test_no_cors_by_default(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in response.headers
    preflight = await client.options(
        "/healthz",
        headers={"origin": "https://evil.example", "access-control-request-method": "GET"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    assert preflight.status_code == 403


async def test_metrics_not_public(client: httpx.AsyncClient, app: FastAPI) -> None:
    # The test client's address is 203.0.113.7: neither loopback nor allowed.
    assert_problem(await client.get("/metrics"), 404, "not_found")
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as local:
        await local.get("/healthz")
        response = await local.get("/metrics")
    assert response.status_code == 200
    assert (
        'bastion_http_requests_total{method="GET",route="/healthz",status="200"}' in response.text
    )
    assert "bastion_audit_queue_depth" in response.text


async def test_metrics_use_route_templates_not_raw_paths(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    for i in range(5):
        await client.get(f"/random-{i}")
    output = generate_latest(app.state.services.metrics.registry).decode()
    assert "random-" not in output
    assert 'route="<unmatched>"' in output


async def test_rejected_requests_are_audited(client: httpx.AsyncClient, app: FastAPI) -> None:
    await client.post("/test/echo", content=b"x", headers={"content-type": "text/plain"})
    services = app.state.services
    await services.audit.aclose()  # flush
    async with services.database.session() as session:
        rows = (await session.execute(select(audit_events))).mappings().all()
    rejected = [r for r in rows if r["type"] == EventType.HTTP_REQUEST_REJECTED]
    assert len(rejected) == 1
    assert rejected[0]["reason"] == "unsupported_media_type"
    assert rejected[0]["client_ip"] == "203.0.113.7"
    assert rejected[0]["request_id"]


async def test_openapi_document_served_in_development(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.json()["info"]["title"] == "Bastion"
