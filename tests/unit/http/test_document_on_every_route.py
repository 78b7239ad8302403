"""Every operation documents the answers middleware may give on any route (429, 503)."""

from __future__ import annotations

from fastapi import FastAPI

from bastion import create_app
from bastion.config import Settings
from bastion.http.problems import PROBLEM_CONTENT_TYPE
from bastion.http.responses import document_on_every_route, problems


def test_429_and_503_are_added_to_every_operation_and_existing_ones_kept() -> None:
    app = FastAPI()

    @app.get("/plain")
    async def plain() -> dict[str, str]:
        return {}

    @app.post("/own", responses={429: {"description": "mine"}})
    async def own() -> dict[str, str]:
        return {}

    document_on_every_route(app)
    paths = app.openapi()["paths"]
    plain_answers = paths["/plain"]["get"]["responses"]
    assert {"200", "429", "503"} <= set(plain_answers)
    assert PROBLEM_CONTENT_TYPE in plain_answers["429"]["content"]
    assert paths["/own"]["post"]["responses"]["429"]["description"] == "mine"
    assert app.openapi() is app.openapi()  # built once


def test_the_real_app_documents_them_everywhere(settings: Settings) -> None:
    app = create_app(settings)
    for path_item in app.openapi()["paths"].values():
        for operation in path_item.values():
            assert {"429", "503"} <= set(operation["responses"]), operation.get("operationId")
    assert problems(429)[429]["content"]
