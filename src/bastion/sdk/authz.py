"""Enforce authorization decisions in any FastAPI or Starlette service (deny by default).

::

    from bastion.sdk.authz import Authorizer, EmbeddedChecker, RemoteChecker

    # Against a Bastion server (a service account listed in BASTION_AUTHZ__QUERY_USERS):
    checker = RemoteChecker("https://id.example.com", store_id, token=service_token)
    # ...or in-process, over Bastion's own authorization service:
    checker = EmbeddedChecker(services.authz, store_id)

    authz = Authorizer(checker, principal=auth)          # auth: a BastionAuth dependency

    @app.get("/documents/{doc_id}")
    async def read(doc_id: str, _: Decision = Depends(authz.require("can_view", "document",
                                                                    from_path="doc_id"))): ...

A request is allowed only when the check answers *allowed*. Everything else is refused: a
denied check, an object id that is missing or not a valid OpenFGA id, a check that fails (a
condition that cannot be evaluated), and a decision that cannot be obtained (Bastion
unreachable: 503 ``authorization_unavailable``, never a pass). A refusal is 403 ``forbidden``
problem+json, or 404 ``not_found`` when ``hide_existence`` is set (the caller must not learn
that the object exists). Every check is recorded in Bastion's decision log (by the embedded
service, or by the server).

``current_time`` is added to the request context (unless the caller's context function sets
it), so time-bound grants (``current_time < grant_time + grant_duration``) expire by themselves.

A constant object (a singleton such as Bastion's own ``system:bastion``) is named with
``object_id="bastion"``. Every dependency ``require`` builds carries its :class:`Requirement`
(:func:`requirement_of`), so a test can walk the route table and fail on any route that no
``require`` guards (Bastion does this for every ``/v1/admin`` route).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from fastapi import Depends, Request

from bastion.authz.errors import AuthorizationUnavailable, AuthzError
from bastion.authz.service import AuthzService, CheckRequest, Consistency, RequestInfo
from bastion.authz.tuples import Tuple
from bastion.clock import Clock, SystemClock
from bastion.http.errors import Forbidden, NotFound

if TYPE_CHECKING:  # imported where a remote client is made: the server itself never makes one
    import httpx

__all__ = [
    "AuthorizationUnavailable",
    "Authorizer",
    "Checker",
    "Contextual",
    "Decision",
    "EmbeddedChecker",
    "RemoteChecker",
    "Requirement",
    "requirement_of",
]

#: An object id as OpenFGA accepts it: no separator, no whitespace, bounded.
_OBJECT_ID = re.compile(r"[^:#@\s]{1,254}")
DEFAULT_TIMEOUT_SECONDS = 2.0
#: ``contextual(request, object_id)``: tuples for one check, from the service's own data.
Contextual = Callable[[Request, str], Awaitable[Iterable[Tuple]]]
#: Attribute set on every dependency built by :meth:`Authorizer.require`.
REQUIREMENT_MARKER = "__bastion_authz_requirement__"


@dataclass(frozen=True, slots=True)
class Decision:
    """An allowed request: what was checked (denials never reach the route)."""

    user: str
    relation: str
    object: str


@dataclass(frozen=True, slots=True)
class Requirement:
    """What a ``require`` dependency demands: ``relation`` on an object of ``object_type``."""

    relation: str
    object_type: str
    hide_existence: bool


def requirement_of(dependency: object) -> Requirement | None:
    """The :class:`Requirement` of a dependency built by :meth:`Authorizer.require`; None for
    any other callable (to check a route table: every guarded route depends on one)."""
    value = getattr(dependency, REQUIREMENT_MARKER, None)
    return value if isinstance(value, Requirement) else None


class Checker(Protocol):
    """Answers one check.

    Returns ``True`` (allowed) or ``False`` (not allowed). Raises ``AuthzError`` when the check
    itself fails (a bad request, a condition that cannot be evaluated) and
    ``AuthorizationUnavailable`` when no decision can be obtained. ``contextual_tuples`` hold
    for this check only (relationships the service knows from its own row, e.g. an owner).
    """

    async def check(
        self,
        object: str,  # noqa: A002 - OpenFGA's field name
        relation: str,
        user: str,
        *,
        context: Mapping[str, Any],
        scope: Mapping[str, Any] | None,
        contextual_tuples: Sequence[Tuple] = (),
    ) -> bool: ...


class EmbeddedChecker:
    """Checks with Bastion's :class:`AuthzService` in this process (decisions are logged)."""

    def __init__(
        self,
        service: AuthzService,
        store_id: str,
        *,
        model_id: str | None = None,
        consistency: Consistency = Consistency.HIGHER_CONSISTENCY,
    ) -> None:
        self.service = service
        self.store_id = store_id
        self.model_id = model_id
        self.consistency = consistency

    async def check(
        self,
        object: str,  # noqa: A002 - OpenFGA's field name
        relation: str,
        user: str,
        *,
        context: Mapping[str, Any],
        scope: Mapping[str, Any] | None,
        contextual_tuples: Sequence[Tuple] = (),
    ) -> bool:
        outcome = await self.service.check(
            self.store_id,
            CheckRequest(
                object, relation, user, context=context, contextual_tuples=contextual_tuples
            ),
            model_id=self.model_id,
            consistency=self.consistency,
            info=RequestInfo(scope=scope, actor=user, source="sdk"),
        )
        return outcome.allowed


class RemoteChecker:
    """Checks against a Bastion server's OpenFGA-compatible API (``POST /stores/{id}/check``).

    ``token`` is a Bastion access token allowed to query (``BASTION_AUTHZ__QUERY_USERS``), or a
    coroutine function returning a fresh one. Any failure to get an answer raises
    ``AuthorizationUnavailable``; the server records the decision.
    """

    def __init__(
        self,
        base_url: str,
        store_id: str,
        *,
        token: str | Callable[[], Awaitable[str]],
        model_id: str | None = None,
        consistency: Consistency = Consistency.HIGHER_CONSISTENCY,
        client: httpx.AsyncClient | None = None,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        allow_insecure_http: bool = False,
    ) -> None:
        if not base_url.startswith("https://") and not allow_insecure_http:
            raise ValueError(
                f"{base_url!r} is not an https:// URL; pass allow_insecure_http=True for tests"
            )
        self.url = f"{base_url.rstrip('/')}/stores/{store_id}/check"
        self._token = token
        self.model_id = model_id
        self.consistency = consistency
        import httpx  # noqa: PLC0415 - see the TYPE_CHECKING import

        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(follow_redirects=False)
        self._timeout = timeout_seconds

    async def _bearer(self) -> str:
        return self._token if isinstance(self._token, str) else await self._token()

    async def check(
        self,
        object: str,  # noqa: A002 - OpenFGA's field name
        relation: str,
        user: str,
        *,
        context: Mapping[str, Any],
        scope: Mapping[str, Any] | None,  # noqa: ARG002 - the server has its own request
        contextual_tuples: Sequence[Tuple] = (),
    ) -> bool:
        body: dict[str, Any] = {
            "tuple_key": {"object": object, "relation": relation, "user": user},
            "context": dict(context),
            "consistency": self.consistency.value,
        }
        if contextual_tuples:
            body["contextual_tuples"] = {"tuple_keys": [_tuple_key(t) for t in contextual_tuples]}
        if self.model_id:
            body["authorization_model_id"] = self.model_id
        import httpx  # noqa: PLC0415 - loaded with the client

        try:
            response = await self._client.post(
                self.url,
                json=body,
                headers={"Authorization": f"Bearer {await self._bearer()}"},
                timeout=self._timeout,
            )
        except httpx.HTTPError:
            raise AuthorizationUnavailable from None
        if response.status_code == httpx.codes.BAD_REQUEST:
            raise AuthzError("the authorization server refused the check")
        if response.status_code != httpx.codes.OK:
            raise AuthorizationUnavailable
        try:
            allowed = response.json()["allowed"]
        except (ValueError, KeyError, TypeError):
            raise AuthorizationUnavailable from None
        return allowed is True  # anything but a JSON true is a denial

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()


def _tuple_key(t: Tuple) -> dict[str, Any]:
    key: dict[str, Any] = {"object": t.object, "relation": t.relation, "user": t.user}
    if t.condition:
        key["condition"] = {"name": t.condition, "context": dict(t.context or {})}
    return key


def _default_user(who: Any) -> str:
    """``user:<id>`` for a ``Principal`` (``user_id``) or an ``AuthenticatedUser``
    (``subject``)."""
    user_id = getattr(who, "user_id", None) or getattr(who, "subject", None)
    if not isinstance(user_id, str) or not _OBJECT_ID.fullmatch(user_id):
        raise Forbidden
    return f"user:{user_id}"


class Authorizer:
    """Builds ``require(...)`` dependencies over one :class:`Checker` and one principal
    dependency (``BastionAuth`` in another service, Bastion's own authenticator inside it)."""

    def __init__(
        self,
        checker: Checker,
        *,
        principal: Callable[..., Awaitable[Any]],
        user_of: Callable[[Any], str] = _default_user,
        context: Callable[[Request], Mapping[str, Any]] | None = None,
        hide_existence: bool = False,
        clock: Clock | None = None,
    ) -> None:
        self.checker = checker
        self.principal = principal
        self.user_of = user_of
        self.context = context
        self.hide_existence = hide_existence
        self._clock: Clock = clock or SystemClock()

    def _context(self, request: Request) -> dict[str, Any]:
        values = dict(self.context(request)) if self.context is not None else {}
        values.setdefault("current_time", self._clock.now().isoformat())
        return values

    async def allows(
        self,
        request: Request,
        who: Any,
        relation: str,
        object_type: str,
        object_id: str | None,
        *,
        contextual_tuples: Sequence[Tuple] = (),
    ) -> bool:
        """Whether ``who`` has ``relation`` on ``object_type:<object_id>`` now, for a route that
        adapts its answer rather than refusing (e.g. a list narrowed to the caller's own items).
        Deny by default, like :meth:`require`: False for an id the engine cannot name or a
        failing check. Raises ``AuthorizationUnavailable`` when no decision can be obtained."""
        user = self.user_of(who)
        if not isinstance(object_id, str) or not _OBJECT_ID.fullmatch(object_id):
            return False  # an id the engine cannot even name is never allowed
        try:
            # Passed only when there are some: a Checker written before contextual tuples
            # (without the keyword) keeps working for every other route.
            extra = {"contextual_tuples": tuple(contextual_tuples)} if contextual_tuples else {}
            allowed = await self.checker.check(
                f"{object_type}:{object_id}",
                relation,
                user,
                context=self._context(request),
                scope=request.scope,
                **extra,
            )
        except AuthorizationUnavailable:
            raise
        except AuthzError:
            return False  # a failing check (e.g. a missing condition parameter) denies
        return allowed is True  # fail closed on anything but a plain yes

    def require(
        self,
        relation: str,
        object_type: str,
        *,
        from_path: str | None = None,
        from_query: str | None = None,
        object_id: str | Callable[[Request], str | None] | None = None,
        hide_existence: bool | None = None,
        contextual: Contextual | None = None,
    ) -> Callable[..., Awaitable[Decision]]:
        """A dependency allowing the request only if the caller has ``relation`` on
        ``object_type:<id>``, the id taken from a path parameter, a query parameter, a
        function of the request or a constant ``object_id`` (exactly one of them).

        ``contextual(request, id)`` returns tuples that hold for this check only, built from
        the service's own row (``document:<id>#owner@user:<owner>``); it returns none for an
        object that does not exist, so a stranger's answer is the same either way.

        Raises ``ValueError`` for a constant id the engine cannot name (at wiring, not per
        request)."""
        sources = [s for s in (from_path, from_query, object_id) if s is not None]
        if len(sources) != 1:
            raise ValueError("give exactly one of from_path, from_query, object_id")
        if isinstance(object_id, str) and not _OBJECT_ID.fullmatch(object_id):
            raise ValueError(f"{object_id!r} is not a valid object id")
        hide = self.hide_existence if hide_existence is None else hide_existence

        def refuse() -> Exception:
            return NotFound() if hide else Forbidden()

        def id_of(request: Request) -> str | None:
            if from_path is not None:
                return request.path_params.get(from_path)
            if from_query is not None:
                return request.query_params.get(from_query)
            if isinstance(object_id, str):
                return object_id
            return object_id(request) if object_id is not None else None

        async def authorized(request: Request, who: Any = Depends(self.principal)) -> Decision:
            user = self.user_of(who)
            oid = id_of(request)
            extra: Sequence[Tuple] = ()
            if contextual is not None and isinstance(oid, str) and _OBJECT_ID.fullmatch(oid):
                extra = tuple(await contextual(request, oid))
            if not await self.allows(
                request, who, relation, object_type, oid, contextual_tuples=extra
            ):
                raise refuse()
            return Decision(user, relation, f"{object_type}:{oid}")

        setattr(authorized, REQUIREMENT_MARKER, Requirement(relation, object_type, hide))
        return authorized
