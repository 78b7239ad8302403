"""OpenAPI documentation of problem+json answers, for routes to list the errors they give.

Every documented status carries the problem schema under ``application/problem+json``, so API
clients (and schemathesis, which checks answers against the document) know each error's shape.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from bastion.http.problems import PROBLEM_CONTENT_TYPE

__all__ = ["Problem", "problems"]

_DESCRIPTIONS = {
    400: "Bad request (see `code`)",
    401: "Not authenticated, or the credentials or token are invalid",
    403: "Forbidden (see `code`)",
    404: "Not found",
    409: "Conflict",
    413: "The request body is too large",
    415: "The body is not JSON",
    422: "Validation failed (see `code`; `errors` lists the fields)",
    429: "Too many requests or attempts; retry after `Retry-After` seconds",
    503: "Overloaded or temporarily unavailable; retry after `Retry-After` seconds",
}


class Problem(BaseModel):
    """RFC 9457 problem details (see docs/api.md)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str
    request_id: str | None = None


_SCHEMA = Problem.model_json_schema()


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entry documenting these error statuses as problem+json."""
    return {
        status: {
            "description": _DESCRIPTIONS.get(status, "Error"),
            "content": {PROBLEM_CONTENT_TYPE: {"schema": _SCHEMA}},
        }
        for status in statuses
    }
