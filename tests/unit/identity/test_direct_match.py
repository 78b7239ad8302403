"""A direct route matches exactly the requests Starlette's route of the same method and path
matches (its quick refusal of a path that does not contain its own changes no answer)."""

from __future__ import annotations

import pytest
from fastapi import APIRouter
from pydantic import BaseModel
from starlette.routing import Match, Route

from bastion.identity._direct import DirectRoute, api_route


class Out(BaseModel):
    ok: bool


def _routes(path: str) -> tuple[DirectRoute, Route]:
    router = APIRouter()

    @router.post(path, response_model=Out)
    async def endpoint() -> Out:  # pragma: no cover - never called
        return Out(ok=True)

    direct = DirectRoute(api_route(router, path, "POST"), lambda *_: endpoint())
    return direct, Route(path, endpoint, methods=["POST"])


@pytest.mark.parametrize("path", ["/v1/sessions", "/v1/sessions/refresh", "/v1/items/{item_id}"])
@pytest.mark.parametrize(
    ("requested", "root_path"),
    [
        ("/v1/sessions", ""),
        ("/v1/sessions/refresh", ""),
        ("/v1/sessions/", ""),
        ("/v1/sessions\n", ""),
        ("/v1/session", ""),
        ("/api/v1/sessions", "/api"),
        ("/api/v1/sessions/refresh", "/api"),
        ("/v1/sessions", "/api"),
        ("/api/v1/sessions", ""),
        ("/v1/items/42", ""),
        ("/api/v1/items/42", "/api"),
        ("/v1/items/", ""),
        ("", ""),
    ],
)
def test_a_direct_route_matches_as_starlettes_route(
    path: str, requested: str, root_path: str
) -> None:
    direct, plain = _routes(path)
    scope = {"type": "http", "method": "POST", "path": requested, "root_path": root_path}
    match, child = direct.matches(scope)
    expected, expected_child = plain.matches(scope)
    assert match is expected
    assert child.get("path_params") == expected_child.get("path_params")
    if match is not Match.NONE:
        assert child["route"] is direct
    other = {**scope, "method": "GET"}
    assert direct.matches(other) == (Match.NONE, {})
