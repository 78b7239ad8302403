"""The OpenFGA HTTP API v1 routes: same paths, bodies, answers and errors as OpenFGA.

Deny by default: every route depends on :class:`~bastion.authz.api.access.ApiAccess` (see there
for who may administer and who may query). The routes are left out of Bastion's OpenAPI
document: OpenFGA's own document describes them, and their errors are OpenFGA's JSON bodies,
not problem+json (:mod:`bastion.authz.api._errors`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypedDict, TypeVar

from fastapi import Depends, FastAPI, Path, Query
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from bastion.authz.api import _convert as convert
from bastion.authz.api._decision import Asker, DecisionRoute, check_request, json_bytes
from bastion.authz.api._errors import OpenFgaError, OpenFgaRoute
from bastion.authz.api.access import ApiAccess, Permission
from bastion.authz.api.schemas import (
    BatchCheckBody,
    CascadeDeleteBody,
    CreateStoreBody,
    ExpandBody,
    ListObjectsBody,
    ListUsersBody,
    ReadBody,
    WriteBody,
    WriteModelBody,
)
from bastion.authz.engine import Explanation
from bastion.authz.errors import AuthzError
from bastion.authz.service import (
    AuthzService,
    CheckOutcome,
    Consistency,
    RequestInfo,
)
from bastion.authz.store import OnDuplicate, OnMissing, Page, is_reserved, is_ulid
from bastion.authz.tuples import Tuple
from bastion.identity.sessions.auth import Principal

__all__ = ["include"]

_F = TypeVar("_F", bound=Callable[..., Any])
StoreId = Path(min_length=1, max_length=64)
PageSize = Query(default=None, ge=1, le=100)
Token = Query(default="", max_length=512)


def _store(store_id: str) -> str:
    # OpenFGA refuses a malformed id as a validation error; a well-formed unknown one is 404.
    if not is_ulid(store_id):
        raise OpenFgaError(400, "validation_error", "invalid store id")
    return store_id


def _changeable(store_id: str) -> str:
    """``store_id`` if the API may change it: stores Bastion manages itself (its own roles,
    changed only through their audited workflows) are read-only here, for administrators too."""
    if is_reserved(_store(store_id)):
        raise OpenFgaError(403, "forbidden", "this store is managed by Bastion and is read-only")
    return store_id


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return JSONResponse(body, status_code=status)


def _page(name: str, items: list[dict[str, Any]], page: Page[Any]) -> Response:
    """One page of a listing, with OpenFGA's continuation token."""
    return _json({name: items, "continuation_token": page.continuation_token})


class _Listing(TypedDict):
    model_id: str | None
    consistency: Consistency
    context: dict[str, Any] | None
    contextual_tuples: tuple[Tuple, ...]


def _listing(body: ListObjectsBody | ListUsersBody) -> _Listing:
    """The evaluation options shared by ListObjects and ListUsers."""
    return _Listing(
        model_id=body.authorization_model_id,
        consistency=body.consistency,
        context=body.context,
        contextual_tuples=convert.contextual(body.contextual_tuples),
    )


#: The check's two possible answers, rendered once.
_CHECK_ANSWERS = {
    allowed: json_bytes({"allowed": allowed, "resolution": ""}) for allowed in (False, True)
}


def _checked(outcome: CheckOutcome) -> bytes:
    return _CHECK_ANSWERS[outcome.allowed]


def _explained(explanation: Explanation) -> bytes:
    return json_bytes({**explanation.as_dict(), "path": explanation.path()})


def _batch_item(result: CheckOutcome | AuthzError) -> dict[str, Any]:
    if isinstance(result, AuthzError):
        return {"error": {"input_error": result.code, "message": result.detail}}
    return {"allowed": result.allowed}


class _Routes:
    """Adds the API's routes to the app's own router, not through an included ``APIRouter``:
    FastAPI matches an included router's routes twice per request (once to choose it, once to
    dispatch), each time after walking its route list for changes, and a check is the hot
    path. Every route is an :class:`OpenFgaRoute`, left out of the OpenAPI document."""

    def __init__(self, app: FastAPI) -> None:
        self._router = app.router

    def _method(self, method: str, path: str, **options: Any) -> Callable[[_F], _F]:
        def add(endpoint: _F) -> _F:
            self._router.add_api_route(
                path,
                endpoint,
                methods=[method],
                route_class_override=OpenFgaRoute,
                include_in_schema=False,
                **options,
            )
            return endpoint

        return add

    def get(self, path: str, **options: Any) -> Callable[[_F], _F]:
        return self._method("GET", path, **options)

    def post(self, path: str, **options: Any) -> Callable[[_F], _F]:
        return self._method("POST", path, **options)

    def delete(self, path: str, **options: Any) -> Callable[[_F], _F]:
        return self._method("DELETE", path, **options)

    def first(self, route: BaseRoute) -> None:
        """Add ``route`` before every route added so far (routes are tried in order)."""
        self._router.routes.insert(0, route)


def include(app: FastAPI, authz: AuthzService, access: ApiAccess) -> None:
    """Mount ``/stores/...`` on ``app``."""
    router = _Routes(app)
    changer = access.requires_info(Permission.ADMINISTER)
    query = access.requires(Permission.QUERY)
    # The queries first: routes are matched in order, and checks are the hot path.
    _query_routes(
        router,
        authz,
        query,
        access.requires_info(Permission.QUERY),
        access.decision_caller(Permission.QUERY),
    )

    # ------------------------------------------------------------------ stores
    @router.post("/stores")
    async def create_store(body: CreateStoreBody, info: RequestInfo = Depends(changer)) -> Response:
        record = await authz.create_store(body.name, info)
        return _json(convert.store_json(record), 201)

    @router.get("/stores")
    async def list_stores(
        page_size: int | None = PageSize,
        continuation_token: str = Token,
        name: str | None = Query(default=None, max_length=256),
        _: Principal = Depends(query),
    ) -> Response:
        page = await authz.list_stores(page_size=page_size, token=continuation_token, name=name)
        return _page("stores", [convert.store_json(s) for s in page.items], page)

    @router.get("/stores/{store_id}")
    async def get_store(store_id: str = StoreId, _: Principal = Depends(query)) -> Response:
        return _json(convert.store_json(await authz.get_store(_store(store_id))))

    @router.delete("/stores/{store_id}")
    async def delete_store(
        store_id: str = StoreId, info: RequestInfo = Depends(changer)
    ) -> Response:
        await authz.delete_store(_changeable(store_id), info)
        return Response(status_code=204)

    # ------------------------------------------------------------------ models
    @router.post("/stores/{store_id}/authorization-models")
    async def write_model(
        body: WriteModelBody, store_id: str = StoreId, info: RequestInfo = Depends(changer)
    ) -> Response:
        model = body.model_dump(exclude_none=True)
        record = await authz.write_model(_changeable(store_id), model, info)
        return _json({"authorization_model_id": record.id}, 201)

    @router.get("/stores/{store_id}/authorization-models")
    async def list_models(
        store_id: str = StoreId,
        page_size: int | None = PageSize,
        continuation_token: str = Token,
        _: Principal = Depends(query),
    ) -> Response:
        page = await authz.list_models(
            _store(store_id), page_size=page_size, token=continuation_token
        )
        return _page("authorization_models", [convert.model_json(m) for m in page.items], page)

    @router.get("/stores/{store_id}/authorization-models/{model_id}")
    async def read_model(
        store_id: str = StoreId,
        model_id: str = Path(min_length=1, max_length=64),
        _: Principal = Depends(query),
    ) -> Response:
        record = await authz.read_model(_store(store_id), model_id)
        return _json({"authorization_model": convert.model_json(record)})

    # ------------------------------------------------------------------ tuples
    @router.post("/stores/{store_id}/write")
    async def write(
        body: WriteBody, store_id: str = StoreId, info: RequestInfo = Depends(changer)
    ) -> Response:
        writes = [convert.tuple_of(k) for k in body.writes.tuple_keys] if body.writes else []
        deletes = (
            [Tuple(k.object, k.relation, k.user) for k in body.deletes.tuple_keys]
            if body.deletes
            else []
        )
        on_duplicate = (
            OnDuplicate.IGNORE
            if body.writes and body.writes.on_duplicate == "ignore"
            else OnDuplicate.ERROR
        )
        on_missing = (
            OnMissing.IGNORE
            if body.deletes and body.deletes.on_missing == "ignore"
            else OnMissing.ERROR
        )
        await authz.write(
            _changeable(store_id),
            writes=writes,
            deletes=deletes,
            model_id=body.authorization_model_id,
            on_duplicate=on_duplicate,
            on_missing=on_missing,
            info=info,
        )
        return _json({})

    @router.post("/stores/{store_id}/cascade-delete")
    async def cascade_delete(
        body: CascadeDeleteBody, store_id: str = StoreId, info: RequestInfo = Depends(changer)
    ) -> Response:
        """Bastion's extension (not an OpenFGA path): delete an object or a user everywhere."""
        if (body.object is None) == (body.user is None):
            raise OpenFgaError(400, "validation_error", "give exactly one of 'object' and 'user'")
        if body.object is not None:
            deleted = await authz.delete_object(_changeable(store_id), body.object, info)
        else:
            deleted = await authz.delete_user(_changeable(store_id), str(body.user), info)
        return _json({"deleted": deleted})

    @router.post("/stores/{store_id}/read")
    async def read(
        body: ReadBody, store_id: str = StoreId, _: Principal = Depends(query)
    ) -> Response:
        key = body.tuple_key
        if key is not None and key.object and key.object.endswith(":") and not key.user:
            raise OpenFgaError(
                400, "validation_error", "the 'user' field is required when 'object' is a type"
            )
        page = await authz.read(
            _store(store_id),
            object=key.object if key else None,
            relation=key.relation if key else None,
            user=key.user if key else None,
            page_size=body.page_size,
            token=body.continuation_token,
        )
        return _page("tuples", [convert.tuple_json(t) for t in page.items], page)

    @router.get("/stores/{store_id}/changes")
    async def read_changes(
        store_id: str = StoreId,
        type: str | None = Query(default=None, max_length=254),  # noqa: A002 - OpenFGA's name
        page_size: int | None = PageSize,
        continuation_token: str = Token,
        start_time: datetime | None = Query(default=None),
        _: Principal = Depends(query),
    ) -> Response:
        page = await authz.read_changes(
            _store(store_id),
            object_type=type,
            page_size=page_size,
            token=continuation_token,
            start_time=start_time,
        )
        return _page("changes", [convert.change_json(c) for c in page.items], page)


def _query_routes(
    router: _Routes,
    authz: AuthzService,
    query: Callable[..., Awaitable[Principal]],
    asker: Callable[..., Awaitable[RequestInfo]],
    decider: Asker,
) -> None:
    # ------------------------------------------------------------------ queries
    # Check and explain are plain Starlette routes tried before every other route (see
    # ``_decision``): the hot path skips FastAPI's per-request machinery and the route walk.
    router.first(DecisionRoute("explain", decider, authz.explain, _explained))
    router.first(DecisionRoute("check", decider, authz.check, _checked))

    @router.post("/stores/{store_id}/batch-check")
    async def batch_check(
        body: BatchCheckBody, store_id: str = StoreId, info: RequestInfo = Depends(asker)
    ) -> Response:
        ids = [c.correlation_id for c in body.checks]
        if len(set(ids)) != len(ids):
            raise OpenFgaError(400, "validation_error", "duplicate correlation_id in checks")
        requests = [check_request(c, c.correlation_id) for c in body.checks]
        results = await authz.batch_check(
            _store(store_id),
            requests,
            model_id=body.authorization_model_id,
            consistency=body.consistency,
            info=info,
        )
        return _json(
            {
                "result": {
                    r.correlation_id: _batch_item(o) for r, o in zip(requests, results, strict=True)
                }
            }
        )

    @router.post("/stores/{store_id}/expand")
    async def expand(
        body: ExpandBody, store_id: str = StoreId, _: Principal = Depends(query)
    ) -> Response:
        result = await authz.expand(
            _store(store_id),
            body.tuple_key.object,
            body.tuple_key.relation,
            model_id=body.authorization_model_id,
            consistency=body.consistency,
            contextual_tuples=convert.contextual(body.contextual_tuples),
        )
        return _json(convert.expand_json(result))

    @router.post("/stores/{store_id}/list-objects")
    async def list_objects(
        body: ListObjectsBody, store_id: str = StoreId, _: Principal = Depends(query)
    ) -> Response:
        result = await authz.list_objects(
            _store(store_id), body.type, body.relation, body.user, **_listing(body)
        )
        return _json(convert.list_objects_json(result))

    @router.post("/stores/{store_id}/list-users")
    async def list_users(
        body: ListUsersBody, store_id: str = StoreId, _: Principal = Depends(query)
    ) -> Response:
        result = await authz.list_users(
            _store(store_id),
            f"{body.object.type}:{body.object.id}",
            body.relation,
            [(f.type, f.relation or "") for f in body.user_filters],
            **_listing(body),
        )
        return _json(convert.list_users_json(result))
