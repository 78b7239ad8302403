"""OpenFGA error bodies: codes OpenFGA's SDKs know, internals never shown."""

from __future__ import annotations

import json

from fastapi import Request
from fastapi.exceptions import RequestValidationError

from bastion.authz.api._errors import OpenFgaError, render
from bastion.authz.errors import StoreNotFound, WriteConflict
from bastion.http.errors import NotAuthenticated
from bastion.storage import StorageError, StorageUnavailable


def request() -> Request:
    return Request(
        {"type": "http", "method": "POST", "path": "/stores", "headers": [], "state": {}}
    )


def body(exc: Exception) -> tuple[int, dict[str, str]]:
    response = render(request(), exc)
    assert response.media_type == "application/json"
    return response.status_code, json.loads(bytes(response.body))


def test_authz_errors_keep_their_openfga_code_and_message() -> None:
    assert body(StoreNotFound()) == (
        404,
        {"code": "store_id_not_found", "message": "The store was not found"},
    )
    status, answer = body(WriteConflict("cannot write a tuple which already exists: ..."))
    assert (status, answer["code"]) == (400, "write_failed_due_to_invalid_input")


def test_bastion_errors_map_to_openfga_codes_by_status() -> None:
    assert body(NotAuthenticated())[1]["code"] == "unauthenticated"
    assert body(OpenFgaError(403, "forbidden", "no"))[1] == {"code": "forbidden", "message": "no"}
    status, answer = body(
        RequestValidationError([{"loc": ("body", "tuple_key", "user"), "msg": "bad"}])
    )
    assert (status, answer) == (
        400,
        {"code": "validation_error", "message": "invalid request: tuple_key.user: bad"},
    )


def test_server_errors_reveal_nothing() -> None:
    status, answer = body(StorageError("SELECT secret FROM users -- /etc/bastion.key"))
    assert (status, answer) == (500, {"code": "internal_error", "message": "Internal Server Error"})
    status, answer = body(StorageUnavailable())
    assert status == 503
    assert answer["code"] == "internal_error"
