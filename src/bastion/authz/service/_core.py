""":class:`AuthzService`: stores, model versions, tuples and evaluation, in one facade.

The HTTP API (:mod:`bastion.authz.api`) and the SDK (:mod:`bastion.sdk.authz`) call this and
nothing below it. It validates models before storing them and tuples against the model before
writing them, evaluates over the per-process index (:mod:`._index`) with the request's
consistency, compiles each model version once (versions are immutable, so a compiled engine
never goes stale), records every check in the decision log and every administrative change in
the audit trail.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from bastion.audit.context import record_from_scope
from bastion.audit.events import AuditEvent, EventType, Outcome
from bastion.audit.interfaces import AuditRecorder
from bastion.authz.engine import Explanation
from bastion.authz.errors import AuthzError
from bastion.authz.service._decisions import DecisionLog
from bastion.authz.service._engine import Engine, compile_model, validate_model
from bastion.authz.service._index import Consistency, IndexCache
from bastion.authz.service._types import CheckOutcome, CheckRequest, RequestInfo
from bastion.authz.store import (
    Change,
    ModelRecord,
    OnDuplicate,
    OnMissing,
    Page,
    SqlAuthzStore,
    StoredTuple,
    StoreRecord,
)
from bastion.authz.tuples import Tuple, TupleSource
from bastion.clock import Clock
from bastion.logging import get_logger

__all__ = ["AuthzService", "CheckOutcome", "CheckRequest", "RequestInfo"]

logger = get_logger("bastion.authz")
_R = TypeVar("_R")
#: Compiled model versions kept per process (a version never changes, so this is a pure cache).
MAX_ENGINES = 128


class AuthzService:
    """The authorization service of one process (see the module docstring)."""

    def __init__(
        self,
        store: SqlAuthzStore,
        *,
        audit: AuditRecorder,
        clock: Clock,
        staleness_seconds: float,
        max_cached_stores: int,
        decision_sample_rate: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.index = IndexCache(
            store,
            staleness_seconds=staleness_seconds,
            max_stores=max_cached_stores,
            monotonic=monotonic,
        )
        self.decisions = DecisionLog(audit, clock, sample_rate=decision_sample_rate)
        self._audit = audit
        self._clock = clock
        self._monotonic = monotonic
        self._staleness = staleness_seconds
        self._engines: OrderedDict[str, tuple[ModelRecord, Engine]] = OrderedDict()
        self._latest: dict[str, tuple[str, float]] = {}
        self._latest_lock = asyncio.Lock()
        #: Background reads of latest model ids, ahead of the bound (see ``_fresh_latest``).
        self._latest_refreshes: dict[str, asyncio.Task[None]] = {}

    async def aclose(self) -> None:
        """Cancel the background refreshes in flight (shutdown)."""
        tasks = list(self._latest_refreshes.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.index.aclose()

    # ------------------------------------------------------------------ audit
    def _event(
        self,
        info: RequestInfo,
        type: EventType,  # noqa: A002 - mirrors AuditEvent.type
        subject: str,
        details: Mapping[str, Any],
        outcome: Outcome = Outcome.SUCCESS,
    ) -> None:
        if info.scope is not None:
            record_from_scope(
                self._audit,
                info.scope,
                type,
                outcome,
                actor=info.actor,
                subject=subject,
                details=details,
                clock=self._clock,
            )
            return
        event = AuditEvent(
            type, outcome, self._clock.now(), actor=info.actor, subject=subject, details=details
        )
        self._audit.record(event)

    # ------------------------------------------------------------------ stores
    async def create_store(self, name: str, info: RequestInfo) -> StoreRecord:
        record = await self.store.create_store(name)
        self._event(info, EventType.AUTHZ_STORE_CREATED, f"store:{record.id}", {"name": name})
        return record

    async def get_store(self, store_id: str) -> StoreRecord:
        return await self.store.get_store(store_id)

    async def list_stores(
        self, *, page_size: int | None, token: str, name: str | None = None
    ) -> Page[StoreRecord]:
        return await self.store.list_stores(page_size=page_size, token=token, name=name)

    async def delete_store(self, store_id: str, info: RequestInfo) -> None:
        await self.store.delete_store(store_id)
        self.index.forget(store_id)
        self._latest.pop(store_id, None)
        self._event(info, EventType.AUTHZ_STORE_DELETED, f"store:{store_id}", {})

    # ------------------------------------------------------------------ models
    async def write_model(
        self, store_id: str, model: Mapping[str, Any], info: RequestInfo
    ) -> ModelRecord:
        """Validate then store a new version. Raises ValidationError (2000 family)."""
        await self.store.get_store(store_id)
        validate_model(model)
        record = await self.store.write_model(store_id, model)
        self._latest.pop(store_id, None)
        self._event(
            info,
            EventType.AUTHZ_MODEL_WRITTEN,
            f"store:{store_id}",
            {"model_id": record.id, "types": len(model.get("type_definitions") or ())},
        )
        return record

    async def read_model(self, store_id: str, model_id: str | None = None) -> ModelRecord:
        return await self.store.read_model(store_id, model_id)

    async def list_models(
        self, store_id: str, *, page_size: int | None, token: str
    ) -> Page[ModelRecord]:
        return await self.store.list_models(store_id, page_size=page_size, token=token)

    async def engine(
        self,
        store_id: str,
        model_id: str | None = None,
        consistency: Consistency = Consistency.UNSPECIFIED,
    ) -> tuple[ModelRecord, Engine]:
        """The compiled model ``model_id`` (or the latest) of the store."""
        if not model_id:
            model_id = await self._latest_model_id(store_id, consistency)
        elif consistency is Consistency.HIGHER_CONSISTENCY:
            # A compiled version outlives its store in this cache: a store deleted by another
            # process must not keep answering from here.
            await self.store.get_store(store_id)
        cached = self._engines.get(model_id)
        if cached is not None and cached[0].store_id == store_id:
            self._engines.move_to_end(model_id)
            return cached
        record = await self.store.read_model(store_id, model_id)
        compiled = (record, compile_model(record.model))
        self._keep_engine(compiled)
        return compiled

    async def _latest_model_id(self, store_id: str, consistency: Consistency) -> str:
        if consistency is Consistency.HIGHER_CONSISTENCY:
            return await self._read_latest(store_id)
        known = self._fresh_latest(store_id)
        if known is not None:
            return known
        async with self._latest_lock:
            # Requests queued here while another read it reuse that answer: one query per
            # stale interval under load, not one per concurrent request.
            known = self._fresh_latest(store_id)
            return known if known is not None else await self._read_latest(store_id)

    def _fresh_latest(self, store_id: str) -> str | None:
        """The store's latest model id when read at most the staleness bound ago, else None.
        Past half the bound, this starts reading it again in the background (one at a time)."""
        known = self._latest.get(store_id)
        if known is None:
            return None
        age = self._monotonic() - known[1]
        if age > self._staleness:
            return None
        if age > self._staleness / 2 and store_id not in self._latest_refreshes:
            task = asyncio.get_running_loop().create_task(self._refresh_latest(store_id, known))
            self._latest_refreshes[store_id] = task
        return known[0]

    async def _refresh_latest(self, store_id: str, known: tuple[str, float]) -> None:
        """Read the latest model id (and compile that version when not cached), then keep both
        in one step, unless ``known`` was replaced meanwhile (a model written through this
        process, or a request's own read). On failure nothing changes, and the first request
        past the bound reads it itself (and answers the error)."""
        try:
            started = self._monotonic()
            model_id = await self.store.latest_model_id(store_id)
            cached = self._engines.get(model_id)
            if cached is None or cached[0].store_id != store_id:
                record = await self.store.read_model(store_id, model_id)
                cached = (record, compile_model(record.model))
            if self._latest.get(store_id) is known:
                self._keep_engine(cached)
                self._latest[store_id] = (model_id, started)
        except Exception as exc:  # noqa: BLE001 - a background task: logged, never raised
            logger.warning("authz model refresh failed", store=store_id, error=type(exc).__name__)
        finally:
            self._latest_refreshes.pop(store_id, None)

    def _keep_engine(self, compiled: tuple[ModelRecord, Engine]) -> None:
        self._engines[compiled[0].id] = compiled
        self._engines.move_to_end(compiled[0].id)
        while len(self._engines) > MAX_ENGINES:
            self._engines.popitem(last=False)

    async def _read_latest(self, store_id: str) -> str:
        now = self._monotonic()
        model_id = await self.store.latest_model_id(store_id)
        self._latest[store_id] = (model_id, now)
        return model_id

    # ------------------------------------------------------------------ tuples
    async def write(
        self,
        store_id: str,
        *,
        writes: Sequence[Tuple] = (),
        deletes: Sequence[Tuple] = (),
        model_id: str | None = None,
        on_duplicate: OnDuplicate = OnDuplicate.ERROR,
        on_missing: OnMissing = OnMissing.ERROR,
        info: RequestInfo,
    ) -> None:
        """Validate ``writes`` against the model, then apply everything in one transaction."""
        if writes:
            _, engine = await self.engine(store_id, model_id, Consistency.HIGHER_CONSISTENCY)
            for t in writes:
                engine.validate_write(t)  # the Write API answers 2000, as OpenFGA does
        elif model_id:
            await self.engine(store_id, model_id)  # a pinned model must exist
        try:
            count = await self.store.write(
                store_id, writes, deletes, on_duplicate=on_duplicate, on_missing=on_missing
            )
        finally:
            # Read-your-writes in this process, whatever happened.
            self.index.invalidate(store_id)
        self._event(
            info,
            EventType.AUTHZ_TUPLES_WRITTEN,
            f"store:{store_id}",
            {
                "writes": [str(t) for t in writes],
                "deletes": [str(t) for t in deletes],
                "applied": count,
            },
        )

    async def delete_object(self, store_id: str, entity: str, info: RequestInfo) -> int:
        """Delete every tuple on or granting to ``entity`` (see SqlAuthzStore)."""
        count = await self.store.delete_object(store_id, entity)
        return self._cascaded(store_id, {"object": entity, "deleted": count}, info)

    async def delete_user(self, store_id: str, user: str, info: RequestInfo) -> int:
        count = await self.store.delete_user(store_id, user)
        return self._cascaded(store_id, {"user": user, "deleted": count}, info)

    def _cascaded(self, store_id: str, details: dict[str, Any], info: RequestInfo) -> int:
        self.index.invalidate(store_id)
        self._event(info, EventType.AUTHZ_TUPLES_CASCADED, f"store:{store_id}", details)
        return int(details["deleted"])

    async def read(
        self,
        store_id: str,
        *,
        object: str | None,  # noqa: A002 - OpenFGA's field name
        relation: str | None,
        user: str | None,
        page_size: int | None,
        token: str,
    ) -> Page[StoredTuple]:
        return await self.store.read(
            store_id,
            object=object,
            relation=relation,
            user=user,
            page_size=page_size,
            token=token,
        )

    async def read_changes(
        self,
        store_id: str,
        *,
        object_type: str | None,
        page_size: int | None,
        token: str,
        start_time: datetime | None = None,
    ) -> Page[Change]:
        return await self.store.read_changes(
            store_id,
            object_type=object_type,
            page_size=page_size,
            token=token,
            start_time=start_time,
        )

    # ------------------------------------------------------------------ evaluation
    async def source(self, store_id: str, consistency: Consistency) -> TupleSource:
        """The store's tuples, as fresh as ``consistency`` requires."""
        return await self.index.get(store_id, consistency)

    async def _prepared(
        self, store_id: str, model_id: str | None, consistency: Consistency
    ) -> tuple[ModelRecord, Engine, TupleSource]:
        """The model version and the tuples an evaluation runs on."""
        ready = self._ready(store_id, model_id, consistency)
        if ready is not None:
            return ready
        record, engine = await self.engine(store_id, model_id, consistency)
        return record, engine, await self.source(store_id, consistency)

    def _ready(
        self, store_id: str, model_id: str | None, consistency: Consistency
    ) -> tuple[ModelRecord, Engine, TupleSource] | None:
        """What :meth:`_prepared` answers when nothing needs the database (the latest model id
        known and fresh, the compiled model cached, the index loaded and within its staleness
        bound; never for ``HIGHER_CONSISTENCY``), with the same cache updates, without its
        awaits; otherwise None."""
        if consistency is Consistency.HIGHER_CONSISTENCY:
            return None
        if not model_id:
            model_id = self._fresh_latest(store_id)
            if model_id is None:
                return None
        cached = self._engines.get(model_id)
        if cached is None or cached[0].store_id != store_id:
            return None
        tuples = self.index.ready(store_id)
        if tuples is None:
            return None
        self._engines.move_to_end(model_id)
        return cached[0], cached[1], tuples

    async def check(
        self,
        store_id: str,
        request: CheckRequest,
        *,
        model_id: str | None = None,
        consistency: Consistency = Consistency.UNSPECIFIED,
        info: RequestInfo,
    ) -> CheckOutcome:
        """Evaluate one check and record the decision. Raises the engine's errors (after
        recording them as a denied decision)."""
        started = time.perf_counter()
        ready = self._ready(store_id, model_id, consistency)
        if ready is None:
            ready = await self._prepared(store_id, model_id, consistency)
        record, engine, tuples = ready
        return self._evaluate(
            store_id, record, engine, tuples, request=request, info=info, started=started
        )

    async def batch_check(
        self,
        store_id: str,
        requests: Sequence[CheckRequest],
        *,
        model_id: str | None = None,
        consistency: Consistency = Consistency.UNSPECIFIED,
        info: RequestInfo,
    ) -> list[CheckOutcome | AuthzError]:
        """One outcome or error per request, in order (one model and one index for all)."""
        record, engine, tuples = await self._prepared(store_id, model_id, consistency)
        results: list[CheckOutcome | AuthzError] = []
        for request in requests:
            started = time.perf_counter()
            try:
                results.append(
                    self._evaluate(
                        store_id,
                        record,
                        engine,
                        tuples,
                        request=request,
                        info=info,
                        started=started,
                    )
                )
            except AuthzError as exc:
                results.append(exc)
        return results

    def _evaluate(
        self,
        store_id: str,
        record: ModelRecord,
        engine: Engine,
        tuples: TupleSource,
        *,
        request: CheckRequest,
        info: RequestInfo,
        started: float,
    ) -> CheckOutcome:
        result, allowed, reason = self._logged(
            engine.check,
            _verdict,
            tuples,
            store_id=store_id,
            model_id=record.id,
            request=request,
            info=info,
            started=started,
        )
        return CheckOutcome(allowed, record.id, reason, result)

    def _logged(
        self,
        evaluate: Callable[..., _R],
        verdict: Callable[[_R], tuple[bool, str]],
        tuples: TupleSource,
        *,
        store_id: str,
        model_id: str,
        request: CheckRequest,
        info: RequestInfo,
        started: float,
    ) -> tuple[_R, bool, str]:
        """``evaluate`` (the engine's check or explain) on ``request``, its decision logged:
        errors as denials (then raised), else ``verdict(result)`` = (allowed, reason)."""
        try:
            result = evaluate(
                tuples,
                request.object,
                request.relation,
                request.user,
                context=request.context,
                contextual_tuples=request.contextual_tuples,
            )
        except AuthzError as exc:
            self._decide(store_id, model_id, request, info, started, allowed=False, reason=exc.code)
            raise
        allowed, reason = verdict(result)
        self._decide(store_id, model_id, request, info, started, allowed=allowed, reason=reason)
        return result, allowed, reason

    def _decide(
        self,
        store_id: str,
        model_id: str,
        request: CheckRequest,
        info: RequestInfo,
        started: float,
        *,
        allowed: bool,
        reason: str,
    ) -> None:
        self.decisions.log(
            allowed,
            store_id=store_id,
            model_id=model_id,
            object=request.object,
            relation=request.relation,
            user=request.user,
            latency_ms=(time.perf_counter() - started) * 1000,
            reason=reason,
            source=info.source,
            scope=info.scope,
            actor=info.actor,
        )

    async def explain(
        self,
        store_id: str,
        request: CheckRequest,
        *,
        model_id: str | None = None,
        consistency: Consistency = Consistency.UNSPECIFIED,
        info: RequestInfo,
    ) -> Explanation:
        """The check's outcome with the tree of tuples and rewrites behind it (recorded in the
        decision log like a check, with the source ``explain``)."""
        started = time.perf_counter()
        record, engine, tuples = await self._prepared(store_id, model_id, consistency)
        explain_info = RequestInfo(scope=info.scope, actor=info.actor, source="explain")
        explanation, _, _ = self._logged(
            engine.explain,
            _explained,
            tuples,
            store_id=store_id,
            model_id=record.id,
            request=request,
            info=explain_info,
            started=started,
        )
        return explanation

    async def expand(
        self,
        store_id: str,
        object: str,  # noqa: A002 - OpenFGA's field name
        relation: str,
        *,
        model_id: str | None = None,
        consistency: Consistency = Consistency.UNSPECIFIED,
        contextual_tuples: Sequence[Tuple] = (),
    ) -> Any:
        _, engine, tuples = await self._prepared(store_id, model_id, consistency)
        return engine.expand(tuples, object, relation, contextual_tuples=contextual_tuples)

    async def list_objects(
        self,
        store_id: str,
        object_type: str,
        relation: str,
        user: str,
        *,
        model_id: str | None = None,
        consistency: Consistency = Consistency.UNSPECIFIED,
        context: Mapping[str, Any] | None = None,
        contextual_tuples: Sequence[Tuple] = (),
    ) -> Any:
        _, engine, tuples = await self._prepared(store_id, model_id, consistency)
        return engine.list_objects(
            tuples,
            object_type,
            relation,
            user,
            context=context,
            contextual_tuples=contextual_tuples,
        )

    async def list_users(
        self,
        store_id: str,
        object: str,  # noqa: A002 - OpenFGA's field name
        relation: str,
        user_filters: Iterable[tuple[str, str]],
        *,
        model_id: str | None = None,
        consistency: Consistency = Consistency.UNSPECIFIED,
        context: Mapping[str, Any] | None = None,
        contextual_tuples: Sequence[Tuple] = (),
    ) -> Any:
        _, engine, tuples = await self._prepared(store_id, model_id, consistency)
        return engine.list_users(
            tuples,
            object,
            relation,
            [f"{t}#{r}" if r else t for t, r in user_filters],
            context=context,
            contextual_tuples=contextual_tuples,
        )


def _verdict(result: Any) -> tuple[bool, str]:
    allowed = bool(result.allowed)
    return allowed, _reason_of(result, allowed)


def _explained(explanation: Explanation) -> tuple[bool, str]:
    allowed = explanation.allowed
    return allowed, "relationship_found" if allowed else "no_relationship"


def _reason_of(result: Any, allowed: bool) -> str:
    reason = getattr(result, "reason", None)
    if isinstance(reason, str) and reason:
        return reason
    return "relationship_found" if allowed else "no_relationship"
