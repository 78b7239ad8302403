"""OpenAPI documentation of problem+json answers, for routes to list the errors they give.

Every documented status carries the problem schema under ``application/problem+json``, so API
clients (and schemathesis, which checks answers against the document) know each error's shape.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict

from bastion.http.problems import PROBLEM_CONTENT_TYPE

__all__ = ["ANY_ROUTE_STATUSES", "Problem", "document_on_every_route", "problems"]

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


#: Answers the middleware may give on any route, before its handler runs: 429 from the rate
#: limits (the general per-IP and per-user budgets cover every route) and 503 from the
#: concurrency cap or a fail-closed limiter whose store is down.
ANY_ROUTE_STATUSES = (429, 503)


def document_on_every_route(app: FastAPI, statuses: tuple[int, ...] = ANY_ROUTE_STATUSES) -> None:
    """Add ``statuses`` (problem+json) to every operation of ``app``'s OpenAPI document that does
    not list them yet, so clients and schemathesis know any route may answer them."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        extra = problems(*statuses)
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                if isinstance(operation, dict) and "responses" in operation:
                    for status, answer in extra.items():
                        operation["responses"].setdefault(str(status), answer)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
