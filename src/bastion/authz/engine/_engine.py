"""The engine facade: a compiled model answering Check, BatchCheck, Expand, ListObjects,
ListUsers and Explain over a :class:`~bastion.authz.tuples.TupleSource`.

Request validation follows OpenFGA's codes: a malformed or unknown object, relation or user in
a Check is a validation error (2000); ListObjects / ListUsers answer an unknown type 2021 and an
unknown relation 2022; an invalid contextual tuple is 2027 (a condition problem on it 2000).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bastion.authz.engine._check import (
    ParsedUser,
    Request,
    Resolver,
    compile_resolvers,
    compile_search_plans,
    parse_user,
    resolve_request,
)
from bastion.authz.engine._explain import Explanation, expand_tree, explain
from bastion.authz.engine._listing import ReverseGraph, forward_candidates
from bastion.authz.engine._search import UNSURE, search
from bastion.authz.engine._typesystem import TypeSystem
from bastion.authz.errors import (
    AuthzError,
    InvalidContinuationToken,
    InvalidTuple,
    RelationNotFound,
    TypeNotFound,
    ValidationError,
)
from bastion.authz.tuples import MemoryTupleIndex, OverlayTupleSource, Tuple, TupleSource

__all__ = [
    "MAX_CONTEXTUAL_TUPLES",
    "BatchCheckItem",
    "CheckRequest",
    "CheckResult",
    "Engine",
    "ListPage",
]

#: OpenFGA's limit on contextual tuples per request.
MAX_CONTEXTUAL_TUPLES = 100
#: Validated request strings are remembered (a hot user or object skips its regex); the caches
#: are cleared when they reach this size, so hostile input cannot grow them without bound.
_VALIDATION_CACHE_SIZE = 65_536


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The decision of one check, with its reason (``explain`` gives the full path)."""

    allowed: bool
    cycle_detected: bool = False
    reason: str = ""


@dataclass(frozen=True, slots=True)
class CheckRequest:
    """One check of a batch."""

    object: str
    relation: str
    user: str
    context: Mapping[str, Any] | None = None
    contextual_tuples: Sequence[Tuple] = ()
    correlation_id: str = ""


@dataclass(frozen=True, slots=True)
class BatchCheckItem:
    """The answer to one check of a batch: a result or the error that check raised."""

    correlation_id: str
    result: CheckResult | None = None
    error: AuthzError | None = None


@dataclass(frozen=True, slots=True)
class ListPage:
    """One page of a list answer; a ``continuation_token`` means more results follow."""

    items: tuple[str, ...]
    continuation_token: str | None = None
    #: always False: the engine never drops results (kept for callers that merge sources)
    incomplete: bool = field(default=False)


class Engine:
    """One compiled model. Thread-safe for concurrent reads (it holds no per-request state)."""

    def __init__(self, model: Mapping[str, Any]) -> None:
        self.typesystem = TypeSystem(model)
        self._resolvers: dict[str, dict[str, Resolver]] = compile_resolvers(self.typesystem)
        self._plans = compile_search_plans(self.typesystem)
        self._reverse = ReverseGraph.build(self.typesystem)
        self._valid_objects: dict[str, None] = {}
        self._valid_users: dict[str, ParsedUser] = {}

    # ------------------------------------------------------------------ tuples
    def validate_tuple(self, t: Tuple) -> None:
        """OpenFGA's write validation; raises InvalidTuple (2027) or ValidationError (2000)."""
        self.typesystem.validate_tuple(t)

    def validate_write(self, t: Tuple) -> None:
        """OpenFGA's Write API validation: like :meth:`validate_tuple`, plus the refusal of an
        implicit tuple (``doc:1#viewer@doc:1#viewer``), every failure answered as the Write API
        does, a :class:`ValidationError` (2000) naming the tuple and the reason."""
        try:
            self.typesystem.validate_tuple(t)
        except InvalidTuple as error:
            raise ValidationError(error.detail) from error
        user_object, _, user_relation = t.user.partition("#")
        if user_relation == t.relation and user_object == t.object:
            raise ValidationError(f"invalid tuple '{t}': cannot write a tuple that is implicit")

    def _with_contextual(self, tuples: TupleSource, contextual: Sequence[Tuple]) -> TupleSource:
        if not contextual:
            return tuples
        if len(contextual) > MAX_CONTEXTUAL_TUPLES:
            raise ValidationError(f"at most {MAX_CONTEXTUAL_TUPLES} contextual tuples")
        for t in contextual:
            self.typesystem.validate_tuple(t)
        if isinstance(tuples, MemoryTupleIndex):
            return tuples.overlay(contextual)
        return OverlayTupleSource(tuples, MemoryTupleIndex(contextual))

    # ------------------------------------------------------------------ check
    def check(
        self,
        tuples: TupleSource,
        object: str,  # noqa: A002 - OpenFGA's field name
        relation: str,
        user: str,
        *,
        context: Mapping[str, Any] | None = None,
        contextual_tuples: Sequence[Tuple] = (),
    ) -> CheckResult:
        """Is ``user`` related to ``object`` by ``relation``?

        Raises ValidationError (2000) for a bad request, InvalidTuple (2027) for a bad contextual
        tuple, ResolutionTooComplex (2002), ConditionError (2000) for a condition that cannot be
        evaluated (a missing parameter, never a silent deny).
        """
        resolvers = self._resolvers.get(object.partition(":")[0])
        resolve = resolvers.get(relation) if resolvers is not None else None
        parsed = self._valid_users.get(user)
        if resolve is None or parsed is None or object not in self._valid_objects:
            resolve, parsed = self._check_request(object, relation, user)
        if contextual_tuples:
            tuples = self._with_contextual(tuples, contextual_tuples)
        plan = self._plans[object.partition(":")[0]].get(relation)
        if (
            plan is not None
            and type(tuples) is MemoryTupleIndex
            and not parsed[2]
            and not parsed[4]
        ):
            # What ``resolve_request`` does first for a plain user on the index, without
            # building the request unless the search leaves the answer to the walk.
            closures: dict[str, set[str]] = {}
            found = search(plan, object, user, parsed[3], parsed[6], tuples, closures)
            if found != UNSURE:
                return _ALLOWED if found else _DENIED
            request = Request(tuples, user, context, parsed)
            request.closures = closures
            result = resolve_request(resolve, object, request)
        else:
            result = resolve_request(resolve, object, Request(tuples, user, context, parsed), plan)
        return _ALLOWED if result else (_CYCLE if result is None else _DENIED)

    def _check_request(self, obj: str, relation: str, user: str) -> tuple[Resolver, ParsedUser]:
        """Validate a check's object, relation and user (2000), remembering valid strings."""
        try:
            self.typesystem.check_user_object_relation(obj, relation, user)
        except (TypeNotFound, RelationNotFound) as error:
            raise ValidationError(error.detail) from error
        _remember(self._valid_objects, obj, None)
        parsed = parse_user(user)
        _remember(self._valid_users, user, parsed)
        return self._resolvers[obj.partition(":")[0]][relation], parsed

    def batch_check(
        self, tuples: TupleSource, checks: Iterable[CheckRequest]
    ) -> list[BatchCheckItem]:
        """Run every check; one failing check answers its error without failing the batch."""
        items = []
        for c in checks:
            try:
                result = self.check(
                    tuples,
                    c.object,
                    c.relation,
                    c.user,
                    context=c.context,
                    contextual_tuples=c.contextual_tuples,
                )
            except AuthzError as error:
                items.append(BatchCheckItem(c.correlation_id, error=error))
            else:
                items.append(BatchCheckItem(c.correlation_id, result=result))
        return items

    def explain(
        self,
        tuples: TupleSource,
        object: str,  # noqa: A002 - OpenFGA's field name
        relation: str,
        user: str,
        *,
        context: Mapping[str, Any] | None = None,
        contextual_tuples: Sequence[Tuple] = (),
    ) -> Explanation:
        """The check's outcome with the tree of tuples and rewrites behind it."""
        self._check_request(object, relation, user)
        source = self._with_contextual(tuples, contextual_tuples)
        return explain(self.typesystem, Request(source, user, context), object, relation)

    # ------------------------------------------------------------------ expand
    def expand(
        self,
        tuples: TupleSource,
        object: str,  # noqa: A002 - OpenFGA's field name
        relation: str,
        *,
        contextual_tuples: Sequence[Tuple] = (),
    ) -> dict[str, Any]:
        """OpenFGA's Expand tree (``{"root": {...}}``) for ``object#relation``."""
        source = self._with_contextual(tuples, contextual_tuples)
        ts = self.typesystem
        try:
            ts.check_object_relation(object, relation)
        except (TypeNotFound, RelationNotFound) as error:
            raise ValidationError(error.detail) from error
        return expand_tree(ts, source, object, relation)

    # ------------------------------------------------------------------ lists
    def list_objects(
        self,
        tuples: TupleSource,
        object_type: str,
        relation: str,
        user: str,
        *,
        context: Mapping[str, Any] | None = None,
        contextual_tuples: Sequence[Tuple] = (),
        max_results: int | None = None,
        continuation_token: str | None = None,
    ) -> ListPage:
        """Every object of ``object_type`` that ``user`` has ``relation`` on, in sorted pages."""
        source = self._with_contextual(tuples, contextual_tuples)
        self.typesystem.relation(object_type, relation)
        try:
            self.typesystem.check_user(user)
        except (TypeNotFound, RelationNotFound) as error:
            raise ValidationError(error.detail) from error
        # A userset user starts the search at its own node, so Check's "a userset holds itself"
        # (doc:1#viewer@doc:1#viewer) is among the candidates.
        found = self._reverse.candidates(source, object_type, relation, user)
        resolve = self._resolvers[object_type][relation]
        parsed = parse_user(user)
        memo: dict[tuple[str, str], bool] = {}  # one user, one context: answers are shared

        def allowed(obj: str) -> bool:
            return bool(resolve(obj, Request(source, user, context, parsed, memo), 0))

        return _page(found, allowed, max_results, continuation_token)

    def list_users(
        self,
        tuples: TupleSource,
        object: str,  # noqa: A002 - OpenFGA's field name
        relation: str,
        user_filters: Sequence[str],
        *,
        context: Mapping[str, Any] | None = None,
        contextual_tuples: Sequence[Tuple] = (),
        max_results: int | None = None,
        continuation_token: str | None = None,
    ) -> ListPage:
        """Every user (``type:id``, ``type:*`` or ``type:id#relation``) matching a filter
        (``type`` or ``type#relation``) that has ``relation`` on ``object``, in sorted pages."""
        source = self._with_contextual(tuples, contextual_tuples)
        ts = self.typesystem
        filters = []
        for text in user_filters:
            filter_type, _, filter_relation = text.partition("#")
            if filter_type not in ts.types:
                raise TypeNotFound(f"type '{filter_type}' not found")
            if filter_relation:
                ts.relation(filter_type, filter_relation)
            filters.append((filter_type, filter_relation))
        if not filters:
            raise ValidationError("at least one user filter is required")
        object_type = object.partition(":")[0]
        ts.check_object_relation(object, relation)
        found = forward_candidates(ts, source, object, relation, filters)
        resolve = self._resolvers[object_type][relation]

        def allowed(user: str) -> bool:
            return bool(resolve_request(resolve, object, Request(source, user, context)))

        return _page(found, allowed, max_results, continuation_token)


_ALLOWED = CheckResult(allowed=True, reason="a relationship path grants it")
_DENIED = CheckResult(allowed=False, reason="no relationship path grants it")
_CYCLE = CheckResult(
    allowed=False, cycle_detected=True, reason="only a cycle in the relationships could grant it"
)


def _remember(cache: dict[str, Any], key: str, value: Any) -> None:
    if len(cache) >= _VALIDATION_CACHE_SIZE:
        cache.clear()
    cache[key] = value


def _page(
    candidates: set[str],
    allowed: Any,
    max_results: int | None,
    token: str | None,
) -> ListPage:
    """Confirm candidates in sorted order, stopping after a full page."""
    after = _decode_token(token) if token else None
    if max_results is not None and max_results < 1:
        raise ValidationError("max_results must be positive")
    ordered = sorted(c for c in candidates if after is None or c > after)
    items: list[str] = []
    for index, candidate in enumerate(ordered):
        if not allowed(candidate):
            continue
        items.append(candidate)
        if max_results is not None and len(items) == max_results:
            more = index + 1 < len(ordered)
            return ListPage(tuple(items), _encode_token(candidate) if more else None)
    return ListPage(tuple(items))


_TOKEN_PREFIX = "lo1."  # noqa: S105 - a format marker, not a secret


def _encode_token(last: str) -> str:
    """An opaque token: the last item returned (results are sorted, so it is a resume point)."""
    return _TOKEN_PREFIX + base64.urlsafe_b64encode(last.encode()).decode().rstrip("=")


def _decode_token(token: str) -> str:
    if not token.startswith(_TOKEN_PREFIX):
        raise InvalidContinuationToken
    body = token.removeprefix(_TOKEN_PREFIX)
    try:
        raw = base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_", validate=True)
        return raw.decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as error:
        raise InvalidContinuationToken from error
