"""The OpenFGA HTTP API v1 routes: same paths, bodies, answers and errors as OpenFGA.

Deny by default: every route depends on :class:`~bastion.authz.api.access.ApiAccess` (see there
for who may administer and who may query). The routes are left out of Bastion's OpenAPI
document: OpenFGA's own document describes them, and their errors are OpenFGA's JSON bodies,
not problem+json (:mod:`bastion.authz.api._errors`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from starlette.responses import JSONResponse, Response

from bastion.authz.api import _convert as convert
from bastion.authz.api._errors import OpenFgaError, OpenFgaRoute
from bastion.authz.api.access import ApiAccess, Permission
from bastion.authz.api.schemas import (
    BatchCheckBody,
    CascadeDeleteBody,
    CheckBody,
    CreateStoreBody,
    ExpandBody,
    ListObjectsBody,
    ListUsersBody,
    ReadBody,
    WriteBody,
    WriteModelBody,
)
from bastion.authz.errors import AuthzError
from bastion.authz.service import AuthzService, CheckOutcome, CheckRequest, RequestInfo
from bastion.authz.store import OnDuplicate, OnMissing, is_reserved, is_ulid
from bastion.authz.tuples import Tuple
from bastion.identity.sessions.auth import Principal

__all__ = ["include"]

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


def _info(request: Request, who: Principal) -> RequestInfo:
    return RequestInfo(scope=request.scope, actor=who.subject)


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return JSONResponse(body, status_code=status)


def _batch_item(result: CheckOutcome | AuthzError) -> dict[str, Any]:
    if isinstance(result, AuthzError):
        return {"error": {"input_error": result.code, "message": result.detail}}
    return {"allowed": result.allowed}


def include(app: FastAPI, authz: AuthzService, access: ApiAccess) -> None:
    """Mount ``/stores/...`` on ``app``."""
    router = APIRouter(route_class=OpenFgaRoute, include_in_schema=False)
    administer = access.requires(Permission.ADMINISTER)
    query = access.requires(Permission.QUERY)

    # ------------------------------------------------------------------ stores
    @router.post("/stores")
    async def create_store(
        body: CreateStoreBody, request: Request, who: Principal = Depends(administer)
    ) -> Response:
        record = await authz.create_store(body.name, _info(request, who))
        return _json(convert.store_json(record), 201)

    @router.get("/stores")
    async def list_stores(
        page_size: int | None = PageSize,
        continuation_token: str = Token,
        name: str | None = Query(default=None, max_length=256),
        _: Principal = Depends(query),
    ) -> Response:
        page = await authz.list_stores(page_size=page_size, token=continuation_token, name=name)
        stores = [convert.store_json(s) for s in page.items]
        return _json({"stores": stores, "continuation_token": page.continuation_token})

    @router.get("/stores/{store_id}")
    async def get_store(store_id: str = StoreId, _: Principal = Depends(query)) -> Response:
        return _json(convert.store_json(await authz.get_store(_store(store_id))))

    @router.delete("/stores/{store_id}")
    async def delete_store(
        request: Request, store_id: str = StoreId, who: Principal = Depends(administer)
    ) -> Response:
        await authz.delete_store(_changeable(store_id), _info(request, who))
        return Response(status_code=204)

    # ------------------------------------------------------------------ models
    @router.post("/stores/{store_id}/authorization-models")
    async def write_model(
        body: WriteModelBody,
        request: Request,
        store_id: str = StoreId,
        who: Principal = Depends(administer),
    ) -> Response:
        model = body.model_dump(exclude_none=True)
        record = await authz.write_model(_changeable(store_id), model, _info(request, who))
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
        return _json(
            {
                "authorization_models": [convert.model_json(m) for m in page.items],
                "continuation_token": page.continuation_token,
            }
        )

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
        body: WriteBody,
        request: Request,
        store_id: str = StoreId,
        who: Principal = Depends(administer),
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
            info=_info(request, who),
        )
        return _json({})

    @router.post("/stores/{store_id}/cascade-delete")
    async def cascade_delete(
        body: CascadeDeleteBody,
        request: Request,
        store_id: str = StoreId,
        who: Principal = Depends(administer),
    ) -> Response:
        """Bastion's extension (not an OpenFGA path): delete an object or a user everywhere."""
        if (body.object is None) == (body.user is None):
            raise OpenFgaError(400, "validation_error", "give exactly one of 'object' and 'user'")
        info = _info(request, who)
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
        return _json(
            {
                "tuples": [convert.tuple_json(t) for t in page.items],
                "continuation_token": page.continuation_token,
            }
        )

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
        return _json(
            {
                "changes": [convert.change_json(c) for c in page.items],
                "continuation_token": page.continuation_token,
            }
        )

    _query_routes(router, authz, query)
    app.include_router(router)


def _query_routes(
    router: APIRouter, authz: AuthzService, query: Callable[..., Awaitable[Principal]]
) -> None:
    # ------------------------------------------------------------------ queries
    @router.post("/stores/{store_id}/check")
    async def check(
        body: CheckBody,
        request: Request,
        store_id: str = StoreId,
        who: Principal = Depends(query),
    ) -> Response:
        key = body.tuple_key
        outcome = await authz.check(
            _store(store_id),
            CheckRequest(
                key.object,
                key.relation,
                key.user,
                context=body.context,
                contextual_tuples=convert.contextual(body.contextual_tuples),
            ),
            model_id=body.authorization_model_id,
            consistency=body.consistency,
            info=_info(request, who),
        )
        return _json({"allowed": outcome.allowed, "resolution": ""})

    @router.post("/stores/{store_id}/explain")
    async def explain(
        body: CheckBody,
        request: Request,
        store_id: str = StoreId,
        who: Principal = Depends(query),
    ) -> Response:
        """Bastion's extension (not an OpenFGA path): why a check is true or false."""
        key = body.tuple_key
        explanation = await authz.explain(
            _store(store_id),
            CheckRequest(
                key.object,
                key.relation,
                key.user,
                context=body.context,
                contextual_tuples=convert.contextual(body.contextual_tuples),
            ),
            model_id=body.authorization_model_id,
            consistency=body.consistency,
            info=_info(request, who),
        )
        return _json({**explanation.as_dict(), "path": explanation.path()})

    @router.post("/stores/{store_id}/batch-check")
    async def batch_check(
        body: BatchCheckBody,
        request: Request,
        store_id: str = StoreId,
        who: Principal = Depends(query),
    ) -> Response:
        ids = [c.correlation_id for c in body.checks]
        if len(set(ids)) != len(ids):
            raise OpenFgaError(400, "validation_error", "duplicate correlation_id in checks")
        requests = [
            CheckRequest(
                c.tuple_key.object,
                c.tuple_key.relation,
                c.tuple_key.user,
                context=c.context,
                contextual_tuples=convert.contextual(c.contextual_tuples),
                correlation_id=c.correlation_id,
            )
            for c in body.checks
        ]
        results = await authz.batch_check(
            _store(store_id),
            requests,
            model_id=body.authorization_model_id,
            consistency=body.consistency,
            info=_info(request, who),
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
            _store(store_id),
            body.type,
            body.relation,
            body.user,
            model_id=body.authorization_model_id,
            consistency=body.consistency,
            context=body.context,
            contextual_tuples=convert.contextual(body.contextual_tuples),
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
            model_id=body.authorization_model_id,
            consistency=body.consistency,
            context=body.context,
            contextual_tuples=convert.contextual(body.contextual_tuples),
        )
        return _json(convert.list_users_json(result))
