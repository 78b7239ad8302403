"""problem+json rendering: internal 5xx errors are masked, exposed ones keep their code."""

from __future__ import annotations

import json
from typing import Any

from structlog.testing import capture_logs

from bastion.errors import BastionError
from bastion.http.problems import problem_for


class _SecretStoreBroken(BastionError):
    code = "keystore_corrupted"
    status = 500
    title = "Key store corrupted at /var/lib/bastion/keys"


class _Overloaded(BastionError):
    code = "overloaded"
    status = 503
    expose = True


def _scope() -> dict[str, Any]:
    return {"type": "http", "state": {"request_id": "rid-1"}}


def test_internal_5xx_is_masked_and_logged() -> None:
    scope = _scope()
    with capture_logs() as logs:
        status, body = problem_for(scope, _SecretStoreBroken("row 17 failed to decrypt"))
    problem = json.loads(body)
    assert status == 500
    assert problem["code"] == "internal_error"
    assert "keystore" not in body.decode()
    assert "row 17" not in body.decode()
    assert scope["state"]["problem_code"] == "internal_error"
    assert logs[0]["code"] == "keystore_corrupted"
    assert logs[0]["request_id"] == "rid-1"


def test_exposed_5xx_keeps_its_code() -> None:
    status, body = problem_for(_scope(), _Overloaded())
    assert status == 503
    assert json.loads(body)["code"] == "overloaded"


def test_4xx_keeps_its_code_and_detail() -> None:
    status, body = problem_for(_scope(), BastionError("bad thing"))
    assert status == 400
    assert json.loads(body)["detail"] == "bad thing"
