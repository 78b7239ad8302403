"""The authorization service: the per-process index, consistency, decisions, validation.

Two services over one database stand for two processes (two workers, two machines): what one
writes, the other must see as its consistency preference promises.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from bastion.audit.events import AuditEvent, EventType
from bastion.authz.errors import (
    ConditionError,
    ModelNotFound,
    StoreNotFound,
    ValidationError,
)
from bastion.authz.service import (
    AuthzService,
    CheckRequest,
    Consistency,
    Decision,
    DecisionLog,
    RequestInfo,
)
from bastion.authz.store import SqlAuthzStore
from bastion.authz.tuples import MemoryTupleIndex, Tuple
from bastion.clock import FrozenClock
from bastion.storage import Database

MODEL: dict[str, Any] = {
    "schema_version": "1.1",
    "type_definitions": [
        {"type": "user"},
        {
            "type": "document",
            "relations": {"viewer": {"this": {}}},
            "metadata": {
                "relations": {
                    "viewer": {
                        "directly_related_user_types": [
                            {"type": "user"},
                            {"type": "user", "condition": "non_expired_grant"},
                        ]
                    }
                }
            },
        },
    ],
    "conditions": {
        "non_expired_grant": {
            "name": "non_expired_grant",
            "expression": "current_time < grant_time + grant_duration",
            "parameters": {
                "current_time": {"type_name": "TYPE_NAME_TIMESTAMP"},
                "grant_time": {"type_name": "TYPE_NAME_TIMESTAMP"},
                "grant_duration": {"type_name": "TYPE_NAME_DURATION"},
            },
        }
    },
}

ANNE = Tuple("document:1", "viewer", "user:anne")
INFO = RequestInfo()
LATENCY = Consistency.MINIMIZE_LATENCY
HIGHER = Consistency.HIGHER_CONSISTENCY


class ListRecorder:
    """An audit recorder that keeps events in a list."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def record(self, event: AuditEvent) -> None:
        self.events.append(event)

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    def of(self, type_: EventType) -> list[AuditEvent]:
        return [e for e in self.events if e.type is type_]


class Monotonic:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


ServiceFactory = Callable[..., AuthzService]


@pytest.fixture
def recorder() -> ListRecorder:
    return ListRecorder()


@pytest.fixture
def monotonic() -> Monotonic:
    return Monotonic()


@pytest.fixture
def make_service(
    database: Database, clock: FrozenClock, recorder: ListRecorder, monotonic: Monotonic
) -> ServiceFactory:
    def make(*, staleness: float = 60.0, sample_rate: float = 1.0) -> AuthzService:
        return AuthzService(
            SqlAuthzStore(database, clock=clock),
            audit=recorder,
            clock=clock,
            staleness_seconds=staleness,
            max_cached_stores=8,
            decision_sample_rate=sample_rate,
            monotonic=monotonic,
        )

    return make


async def _store_with_model(service: AuthzService) -> str:
    store = await service.create_store("docs", INFO)
    await service.write_model(store.id, MODEL, INFO)
    return store.id


async def _allowed(
    service: AuthzService,
    store_id: str,
    consistency: Consistency,
    user: str = "user:anne",
    context: dict[str, Any] | None = None,
) -> bool:
    request = CheckRequest("document:1", "viewer", user, context=context)
    outcome = await service.check(store_id, request, consistency=consistency, info=INFO)
    return outcome.allowed


async def test_a_revoked_tuple_stops_being_honoured_at_once_under_higher_consistency(
    make_service: ServiceFactory,
) -> None:
    reader, writer = make_service(), make_service()  # two processes, one database
    store_id = await _store_with_model(writer)
    await writer.write(store_id, writes=[ANNE], info=INFO)
    assert await _allowed(reader, store_id, LATENCY)  # the reader's index is now warm

    await writer.write(store_id, deletes=[ANNE], info=INFO)

    # Within the staleness bound, MINIMIZE_LATENCY may still answer from the warm index...
    assert await _allowed(reader, store_id, LATENCY)
    # ...HIGHER_CONSISTENCY never does: it catches up before evaluating.
    assert not await _allowed(reader, store_id, HIGHER)
    assert not await _allowed(reader, store_id, LATENCY)  # and the index is now current


async def test_minimize_latency_catches_up_once_the_staleness_bound_has_passed(
    make_service: ServiceFactory, monotonic: Monotonic
) -> None:
    reader, writer = make_service(staleness=5.0), make_service()
    store_id = await _store_with_model(writer)
    assert not await _allowed(reader, store_id, LATENCY)
    await writer.write(store_id, writes=[ANNE], info=INFO)
    monotonic.now += 4.0
    assert not await _allowed(reader, store_id, LATENCY)  # within the bound: stale allowed
    monotonic.now += 2.0
    assert await _allowed(reader, store_id, LATENCY)  # beyond it: caught up


async def test_warm_checks_query_nothing_until_the_staleness_bound_passes(
    make_service: ServiceFactory, monotonic: Monotonic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within the bound a check is answered from the caches alone (latest model id, compiled
    model, index); once past it, the first check asks the database again for both, and a
    model version another process wrote meanwhile is used from then on."""
    reader, writer = make_service(staleness=5.0), make_service()
    store_id = await _store_with_model(writer)
    assert not await _allowed(reader, store_id, LATENCY)  # warms every cache
    queries: list[str] = []
    for name in ("latest_model_id", "changes_after", "read_model"):
        original = getattr(reader.store, name)

        async def counted(*args: Any, _name: str = name, _original: Any = original) -> Any:
            queries.append(_name)
            return await _original(*args)

        monkeypatch.setattr(reader.store, name, counted)
    await writer.write(store_id, writes=[ANNE], info=INFO)
    newer = await writer.write_model(store_id, MODEL, INFO)
    for _ in range(3):
        outcome = await reader.check(
            store_id, CheckRequest("document:1", "viewer", "user:anne"), info=INFO
        )
        assert not outcome.allowed
    assert queries == []
    monotonic.now += 6.0
    outcome = await reader.check(
        store_id, CheckRequest("document:1", "viewer", "user:anne"), info=INFO
    )
    assert outcome.allowed
    assert outcome.model_id == newer.id
    assert sorted(set(queries)) == ["changes_after", "latest_model_id", "read_model"]


async def test_a_process_reads_its_own_writes(make_service: ServiceFactory) -> None:
    service = make_service(staleness=60.0)
    store_id = await _store_with_model(service)
    assert not await _allowed(service, store_id, LATENCY)
    await service.write(store_id, writes=[ANNE], info=INFO)
    assert await _allowed(service, store_id, LATENCY)
    await service.write(store_id, deletes=[ANNE], info=INFO)
    assert not await _allowed(service, store_id, LATENCY)


async def test_an_expired_conditional_grant_is_never_honoured_from_the_cache(
    make_service: ServiceFactory, clock: FrozenClock
) -> None:
    service = make_service(staleness=60.0)
    store_id = await _store_with_model(service)
    granted = clock.now()
    grant = Tuple(
        "document:1",
        "viewer",
        "user:anne",
        "non_expired_grant",
        {"grant_time": granted.isoformat(), "grant_duration": "1h"},
    )
    await service.write(store_id, writes=[grant], info=INFO)
    during = {"current_time": (granted + timedelta(minutes=30)).isoformat()}
    after = {"current_time": (granted + timedelta(hours=2)).isoformat()}

    assert await _allowed(service, store_id, LATENCY, context=during)
    loads = service.index.loads
    # Same warm index, same store, same model, no write in between: only time moved on.
    assert not await _allowed(service, store_id, LATENCY, context=after)
    assert service.index.loads == loads  # answered from the cached index, not reloaded
    assert await _allowed(service, store_id, LATENCY, context=during)  # no decision cached


async def test_a_missing_condition_parameter_is_an_error_and_a_recorded_denial(
    make_service: ServiceFactory, recorder: ListRecorder, clock: FrozenClock
) -> None:
    service = make_service()
    store_id = await _store_with_model(service)
    grant = Tuple(
        "document:1",
        "viewer",
        "user:anne",
        "non_expired_grant",
        {"grant_time": clock.now().isoformat(), "grant_duration": "1h"},
    )
    await service.write(store_id, writes=[grant], info=INFO)
    with pytest.raises(ConditionError):
        await _allowed(service, store_id, HIGHER)
    (denied,) = recorder.of(EventType.AUTHZ_CHECK_DENIED)
    assert denied.reason == "validation_error"


async def test_decisions_are_recorded_with_store_model_latency_and_reason(
    make_service: ServiceFactory, recorder: ListRecorder
) -> None:
    service = make_service()
    store_id = await _store_with_model(service)
    await service.write(store_id, writes=[ANNE], info=INFO)
    model_id = (await service.read_model(store_id)).id
    assert await _allowed(service, store_id, HIGHER)
    assert not await _allowed(service, store_id, HIGHER, user="user:bob")
    (allowed,) = recorder.of(EventType.AUTHZ_CHECK_ALLOWED)
    (denied,) = recorder.of(EventType.AUTHZ_CHECK_DENIED)
    assert allowed.details["store_id"] == store_id
    assert allowed.details["model_id"] == model_id
    assert allowed.details["latency_ms"] >= 0
    assert allowed.reason  # the engine's reason, or the service's default
    assert denied.reason
    assert allowed.reason != denied.reason
    assert denied.subject == "document:1#viewer@user:bob"


async def test_allowed_decisions_are_sampled_denied_ones_never(
    make_service: ServiceFactory, recorder: ListRecorder
) -> None:
    service = make_service(sample_rate=0.0)
    store_id = await _store_with_model(service)
    await service.write(store_id, writes=[ANNE], info=INFO)
    for _ in range(5):
        assert await _allowed(service, store_id, LATENCY)
        assert not await _allowed(service, store_id, LATENCY, user="user:bob")
    assert recorder.of(EventType.AUTHZ_CHECK_ALLOWED) == []
    assert len(recorder.of(EventType.AUTHZ_CHECK_DENIED)) == 5


async def test_checks_may_pin_a_model_version(make_service: ServiceFactory) -> None:
    service = make_service()
    store_id = await _store_with_model(service)
    v1 = (await service.read_model(store_id)).id
    await service.write(store_id, writes=[ANNE], info=INFO)
    without_viewer = {
        "schema_version": "1.1",
        "type_definitions": [
            {"type": "user"},
            {
                "type": "document",
                "relations": {"owner": {"this": {}}},
                "metadata": {
                    "relations": {"owner": {"directly_related_user_types": [{"type": "user"}]}}
                },
            },
        ],
    }
    await service.write_model(store_id, without_viewer, INFO)
    request = CheckRequest("document:1", "viewer", "user:anne")
    pinned = await service.check(store_id, request, model_id=v1, info=INFO)
    assert pinned.allowed
    assert pinned.model_id == v1
    with pytest.raises(ValidationError):  # the latest model has no viewer relation
        await service.check(store_id, request, consistency=HIGHER, info=INFO)
    with pytest.raises(ModelNotFound):
        await service.check(store_id, request, model_id="01ARZ3NDEKTSV4RRFFQ69G5FAV", info=INFO)


async def test_writes_are_validated_against_the_model(make_service: ServiceFactory) -> None:
    service = make_service()
    store_id = await _store_with_model(service)
    # As OpenFGA's Write API: an invalid tuple is a validation_error (2000) naming the tuple.
    with pytest.raises(ValidationError, match="invalid tuple"):
        await service.write(store_id, writes=[Tuple("document:1", "viewer", "team:x")], info=INFO)
    with pytest.raises(ValidationError):
        await service.write_model(
            store_id,
            {
                "schema_version": "1.1",
                "type_definitions": [
                    {
                        "type": "document",
                        "relations": {"viewer": {"computedUserset": {"relation": "nope"}}},
                    }
                ],
            },
            INFO,
        )
    assert (
        await service.read(
            store_id, object=None, relation=None, user=None, page_size=None, token=""
        )
    ).items == ()


async def test_store_administration_is_audited_and_deleted_stores_are_forgotten(
    make_service: ServiceFactory, recorder: ListRecorder
) -> None:
    service = make_service()
    store_id = await _store_with_model(service)
    await service.write(store_id, writes=[ANNE], info=INFO)
    assert await _allowed(service, store_id, LATENCY)
    await service.delete_store(store_id, INFO)
    with pytest.raises(StoreNotFound):
        await _allowed(service, store_id, LATENCY)
    kinds = {e.type for e in recorder.events}
    assert {
        EventType.AUTHZ_STORE_CREATED,
        EventType.AUTHZ_MODEL_WRITTEN,
        EventType.AUTHZ_TUPLES_WRITTEN,
        EventType.AUTHZ_STORE_DELETED,
    } <= kinds


async def test_cascading_deletes_reach_every_process(make_service: ServiceFactory) -> None:
    reader, writer = make_service(), make_service()
    store_id = await _store_with_model(writer)
    await writer.write(store_id, writes=[ANNE], info=INFO)
    assert await _allowed(reader, store_id, LATENCY)
    assert await writer.delete_user(store_id, "user:anne", INFO) == 1
    assert not await _allowed(reader, store_id, HIGHER)


async def test_a_store_deleted_elsewhere_answers_no_more_under_higher_consistency(
    make_service: ServiceFactory,
) -> None:
    reader, admin = make_service(), make_service()
    store_id = await _store_with_model(admin)
    model_id = (await admin.read_model(store_id)).id
    await admin.write(store_id, writes=[ANNE], info=INFO)
    request = CheckRequest("document:1", "viewer", "user:anne")
    pinned = await reader.check(store_id, request, model_id=model_id, consistency=HIGHER, info=INFO)
    assert pinned.allowed  # the reader has the compiled model and the index cached
    await admin.delete_store(store_id, INFO)
    for model in (model_id, None):
        with pytest.raises(StoreNotFound):
            await reader.check(store_id, request, model_id=model, consistency=HIGHER, info=INFO)


def test_sampling_records_about_the_configured_share_of_allowed_decisions() -> None:
    recorder = ListRecorder()
    log = DecisionLog(recorder, FrozenClock(), sample_rate=0.5)
    allowed = Decision(True, "s", "m", "document:1", "viewer", "user:anne", 0.1, "ok")
    recorded = sum(log.record(allowed) for _ in range(2000))
    # Binomial(2000, 0.5): the bounds are more than 13 standard deviations away.
    assert 700 < recorded < 1300
    assert len(recorder.events) == recorded
    with pytest.raises(ValueError, match="sample_rate"):
        DecisionLog(recorder, FrozenClock(), sample_rate=1.5)


# -- concurrent requests share one catch-up -----------------------------------------------------
def _count(service: AuthzService, name: str) -> list[int]:
    """Count calls of ``service.store.<name>``, each yielding to the event loop first."""
    calls = [0]
    original = getattr(service.store, name)

    async def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        await asyncio.sleep(0)  # let the other requests queue behind this one
        return await original(*args, **kwargs)

    setattr(service.store, name, counted)
    return calls


async def test_requests_queued_behind_a_catch_up_reuse_it(
    make_service: ServiceFactory, monotonic: Monotonic
) -> None:
    reader, writer = make_service(staleness=1.0), make_service()
    store_id = await _store_with_model(writer)
    assert not await _allowed(reader, store_id, LATENCY)  # loaded
    await writer.write(store_id, writes=[ANNE], info=INFO)
    monotonic.now += 2.0  # stale
    catch_ups = _count(reader, "changes_after")
    latest = _count(reader, "latest_model_id")
    answers = await asyncio.gather(*(_allowed(reader, store_id, LATENCY) for _ in range(20)))
    assert answers == [True] * 20
    # One catch-up (two queries: the changes, then "nothing more"), not forty.
    assert catch_ups[0] == 2
    assert latest[0] == 1


async def test_higher_consistency_does_not_reuse_a_catch_up_begun_before_it_asked(
    make_service: ServiceFactory,
) -> None:
    reader, writer = make_service(staleness=60.0), make_service()
    store_id = await _store_with_model(writer)
    assert not await _allowed(reader, store_id, LATENCY)  # loaded
    release = asyncio.Event()
    original = reader.store.changes_after
    first = [True]

    async def slow(*args: Any, **kwargs: Any) -> Any:
        result = await original(*args, **kwargs)
        if first[0]:  # the first catch-up read the changelog before the write below
            first[0] = False
            await release.wait()
        return result

    reader.store.changes_after = slow  # type: ignore[method-assign]
    early = asyncio.create_task(_allowed(reader, store_id, HIGHER))
    await asyncio.sleep(0.01)  # the early catch-up holds the lock, past its first query
    await writer.write(store_id, writes=[ANNE], info=INFO)
    late = asyncio.create_task(_allowed(reader, store_id, HIGHER))
    await asyncio.sleep(0.01)
    release.set()
    await early  # it asked before the write: either answer is consistent for it
    assert await late is True  # it asked after the write: it must see it


async def test_a_large_full_load_calls_on_loaded_once_and_a_small_one_never(
    make_service: ServiceFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bastion.authz.service import _index  # noqa: PLC0415

    service = make_service()
    store_id = await _store_with_model(service)
    await service.write(store_id, writes=[ANNE], info=INFO)
    calls: list[int] = []
    service.index.on_loaded = lambda: calls.append(service.index.loads)
    assert await _allowed(service, store_id, LATENCY)
    assert calls == []  # one tuple: not worth freezing

    monkeypatch.setattr(_index, "LARGE_INDEX", 1)
    other = make_service()
    other.index.on_loaded = lambda: calls.append(other.index.loads)
    assert await _allowed(other, store_id, LATENCY)
    assert await _allowed(other, store_id, HIGHER)  # a catch-up is not a full load
    assert calls == [1]


def test_the_index_build_pauses_the_collector_and_restores_its_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gc  # noqa: PLC0415

    from bastion.authz.service import _index  # noqa: PLC0415

    during: list[bool] = []

    def probe(tuples: list[Tuple]) -> MemoryTupleIndex:
        during.append(gc.isenabled())
        return MemoryTupleIndex(tuples)

    monkeypatch.setattr(_index, "MemoryTupleIndex", probe)
    was = gc.isenabled()
    try:
        gc.enable()
        index = _index.build_index([ANNE])
        assert gc.isenabled()
        assert index.get(ANNE.object, ANNE.relation, ANNE.user) == ANNE
        gc.disable()
        _index.build_index([ANNE])
        assert not gc.isenabled()  # a caller's choice is kept
    finally:
        if was:
            gc.enable()
        else:
            gc.disable()
    assert during == [False, False]


# -- refresh ahead of the staleness bound ------------------------------------------------------
class Gate:
    """Holds the named store queries of one service until opened: a slow or blocked database.
    With ``after``, a query runs first and is held before it answers (it read the database
    before whatever happens while it is held)."""

    def __init__(self, service: AuthzService, *names: str, after: bool = False) -> None:
        self.opened = asyncio.Event()
        self.held = 0
        for name in names:
            original = getattr(service.store, name)

            async def gated(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
                self.held += 1
                if after:
                    result = await _original(*args, **kwargs)
                    await self.opened.wait()
                    return result
                await self.opened.wait()
                return await _original(*args, **kwargs)

            setattr(service.store, name, gated)


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached within 5 s")


def _refreshing(service: AuthzService) -> bool:
    return bool(service._latest_refreshes or service.index._refreshes)


async def test_past_half_the_bound_a_refresh_runs_in_the_background_and_no_check_waits(
    make_service: ServiceFactory, monotonic: Monotonic
) -> None:
    reader, writer = make_service(staleness=10.0), make_service()
    store_id = await _store_with_model(writer)
    assert not await _allowed(reader, store_id, LATENCY)  # loaded at t
    await writer.write(store_id, writes=[ANNE], info=INFO)
    newer = await writer.write_model(store_id, MODEL, INFO)
    monotonic.now += 6.0  # past half the bound
    gate = Gate(reader, "changes_after", "latest_model_id")
    # Answered at once from the index as it is, while the database holds the refresh...
    assert not await asyncio.wait_for(_allowed(reader, store_id, LATENCY), 1)
    await _until(lambda: gate.held == 2)  # the changes and the latest model id, in the background
    # ...and so is a check while the refresh is in flight (which it does not start again).
    assert not await asyncio.wait_for(_allowed(reader, store_id, LATENCY), 1)
    assert gate.held == 2
    gate.opened.set()
    await _until(lambda: not _refreshing(reader))
    monotonic.now += 5.0  # past the bound of the first load, not of the refresh
    blocked = Gate(reader, "changes_after", "latest_model_id", "read_model", "snapshot")
    outcome = await asyncio.wait_for(
        reader.check(store_id, CheckRequest("document:1", "viewer", "user:anne"), info=INFO), 1
    )
    assert outcome.allowed  # the refresh's changes, applied
    assert outcome.model_id == newer.id  # and its model version, compiled in the background
    assert blocked.held == 0


async def test_once_the_bound_has_passed_a_check_waits_for_the_refresh_in_flight(
    make_service: ServiceFactory, monotonic: Monotonic
) -> None:
    reader, writer = make_service(staleness=10.0), make_service()
    store_id = await _store_with_model(writer)
    assert not await _allowed(reader, store_id, LATENCY)
    await writer.write(store_id, writes=[ANNE], info=INFO)
    monotonic.now += 6.0
    gate = Gate(reader, "changes_after", "latest_model_id")
    assert not await asyncio.wait_for(_allowed(reader, store_id, LATENCY), 1)
    await _until(lambda: gate.held == 2)
    monotonic.now += 5.0  # the index in use is now older than the bound
    late = asyncio.create_task(_allowed(reader, store_id, LATENCY))
    await asyncio.sleep(0.05)
    assert not late.done()  # never answered from an index older than the bound
    gate.opened.set()
    assert await asyncio.wait_for(late, 5)  # and it sees the refresh's changes


async def test_a_catch_up_applies_a_transaction_spanning_pages_in_one_step(
    make_service: ServiceFactory,
) -> None:
    reader, writer = make_service(staleness=60.0), make_service()
    store_id = await _store_with_model(writer)
    assert not await _allowed(reader, store_id, LATENCY)
    bob = Tuple("document:1", "viewer", "user:bob")
    await writer.write(store_id, writes=[ANNE, bob], info=INFO)  # one transaction
    original = reader.store.changes_after
    release = asyncio.Event()
    pages = [0]

    async def one_per_page(store: str, after: int, **_: Any) -> Any:
        pages[0] += 1
        if pages[0] == 2:
            await release.wait()  # the second page, while checks run
        return await original(store, after, limit=1)

    reader.store.changes_after = one_per_page  # type: ignore[method-assign]
    higher = asyncio.create_task(_allowed(reader, store_id, HIGHER))
    await _until(lambda: pages[0] == 2)
    # MINIMIZE_LATENCY answers from the index meanwhile: neither change, not one of the two.
    assert not await _allowed(reader, store_id, LATENCY, "user:anne")
    assert not await _allowed(reader, store_id, LATENCY, "user:bob")
    release.set()
    assert await higher
    assert await _allowed(reader, store_id, LATENCY, "user:bob")


async def test_a_write_during_a_catch_up_is_still_read_by_its_writer(
    make_service: ServiceFactory,
) -> None:
    service = make_service(staleness=60.0)
    store_id = await _store_with_model(service)
    assert not await _allowed(service, store_id, LATENCY)
    gate = Gate(service, "changes_after", after=True)
    higher = asyncio.create_task(_allowed(service, store_id, HIGHER))
    await _until(lambda: gate.held == 1)  # it read the changelog: nothing new
    await service.write(store_id, writes=[ANNE], info=INFO)
    gate.opened.set()
    assert not await higher  # it asked before the write
    # The catch-up began before the write, so it does not count as fresh for the writer.
    assert await _allowed(service, store_id, LATENCY)


async def test_a_model_written_during_a_background_refresh_is_not_replaced_by_its_answer(
    make_service: ServiceFactory, monotonic: Monotonic
) -> None:
    service = make_service(staleness=10.0)
    store_id = await _store_with_model(service)
    first = await service.check(
        store_id, CheckRequest("document:1", "viewer", "user:anne"), info=INFO
    )
    monotonic.now += 6.0
    gate = Gate(service, "latest_model_id", after=True)
    await _allowed(service, store_id, LATENCY)  # starts the refresh; it reads the old id
    await _until(lambda: gate.held == 1)
    newer = await service.write_model(store_id, MODEL, INFO)
    gate.opened.set()
    await _until(lambda: not _refreshing(service))
    outcome = await service.check(
        store_id, CheckRequest("document:1", "viewer", "user:anne"), info=INFO
    )
    assert outcome.model_id == newer.id != first.model_id


async def test_closing_the_service_cancels_the_refreshes_in_flight(
    make_service: ServiceFactory, monotonic: Monotonic
) -> None:
    service = make_service(staleness=10.0)
    store_id = await _store_with_model(service)
    assert not await _allowed(service, store_id, LATENCY)
    monotonic.now += 6.0
    gate = Gate(service, "changes_after", "latest_model_id")
    assert not await _allowed(service, store_id, LATENCY)
    await _until(lambda: gate.held == 2)
    tasks = [*service._latest_refreshes.values(), *service.index._refreshes]
    assert len(tasks) == 2
    await service.aclose()
    assert all(task.cancelled() for task in tasks)
    assert not _refreshing(service)
