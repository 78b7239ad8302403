"""Prometheus metrics: HTTP traffic by route template, and the audit queue.

Each app owns its :class:`~prometheus_client.CollectorRegistry` (no global state, so several
apps in one process, as in tests, don't collide). Paths are recorded by *route template*
(``/v1/sessions/{id}``), never the raw path: an attacker probing random URLs must not create
unbounded label values (memory exhaustion of the process and of the metrics backend).
"""

from __future__ import annotations

import bisect
import itertools
import time
from collections.abc import Awaitable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client import metrics as prometheus_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.http.middleware._next import next_app

UNMATCHED_ROUTE = "<unmatched>"

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_BUCKET_BOUNDS = (*_LATENCY_BUCKETS, float("inf"))
_BUCKET_NAMES = tuple(
    floatToGoString(bound)  # type: ignore[no-untyped-call]  # prometheus-client is untyped
    for bound in _BUCKET_BOUNDS
)
_REQUESTS_LABELS = ("route", "method", "status")
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_LATENCY_LABELS = ("route", "method")


class _AuditQueueCollector(Collector):
    """Reads the recorder's counters at scrape time (no work on the request path)."""

    def __init__(self, recorder: Any) -> None:
        self._recorder = recorder

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        rec = self._recorder
        yield GaugeMetricFamily(
            "bastion_audit_queue_depth", "Audit events waiting to be written.", rec.queue_depth
        )
        yield CounterMetricFamily(
            "bastion_audit_events_dropped",
            "Audit events dropped because the queue was full.",
            rec.dropped_total,
        )
        yield CounterMetricFamily(
            "bastion_audit_events_written", "Audit events written to every sink.", rec.written_total
        )
        yield CounterMetricFamily(
            "bastion_audit_write_failures",
            "Audit events a sink gave up on after every retry.",
            rec.failed_total,
        )


class _Series:
    """One (route, method): requests by status, and the latency histogram."""

    __slots__ = ("buckets", "created", "status_created", "statuses", "sum")

    def __init__(self) -> None:
        self.statuses: dict[int, int] = {}
        self.status_created: dict[int, float] = {}
        #: Requests per latency bucket (not cumulative), the last one ``+Inf``.
        self.buckets = [0] * len(_BUCKET_BOUNDS)
        self.sum = 0.0
        self.created = time.time()


class _HttpCollector(Collector):
    """The HTTP request counter and latency histogram, kept as plain numbers.

    The request path only adds to ints and floats (no lock and no per-sample objects: a
    ``prometheus_client`` histogram takes a lock per bucket and walks its bounds in Python);
    the families are built at scrape time. The series are those of a ``Counter`` and a
    ``Histogram`` with the same names and labels, ``_created`` included unless switched off by
    ``prometheus_client``'s ``PROMETHEUS_DISABLE_CREATED_SERIES``.

    Updates and scrapes run on one event loop; a scrape from another thread reads a snapshot
    (copying a dict is atomic under the GIL), at worst one request behind.
    """

    def __init__(self, series: dict[tuple[str, str], _Series]) -> None:
        self.series = series

    def describe(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        yield _requests_family()
        yield _latency_family()

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        created = getattr(prometheus_metrics, "_use_created", True)
        snapshot = list(dict(self.series).items())
        requests = _requests_family()
        for (route, method), series in snapshot:
            status_created = dict(series.status_created)
            for status, count in dict(series.statuses).items():
                when = status_created.get(status) if created else None
                requests.add_metric((route, method, str(status)), float(count), created=when)
        yield requests
        latency = _latency_family()
        for labels, series in snapshot:
            cumulative = itertools.accumulate(list(series.buckets))
            buckets = [(le, float(n)) for le, n in zip(_BUCKET_NAMES, cumulative, strict=True)]
            latency.add_metric(labels, buckets, series.sum)
        for labels, series in snapshot if created else ():
            names = dict(zip(_LATENCY_LABELS, labels, strict=True))
            latency.add_sample(f"{latency.name}_created", names, series.created)
        yield latency


def _requests_family() -> CounterMetricFamily:
    return CounterMetricFamily(
        "bastion_http_requests",
        "HTTP requests by route template, method and status.",
        labels=_REQUESTS_LABELS,
    )


def _latency_family() -> HistogramMetricFamily:
    return HistogramMetricFamily(
        "bastion_http_request_duration_seconds",
        "HTTP request latency by route template and method.",
        labels=_LATENCY_LABELS,
    )


class Metrics:
    """The metrics of one Bastion app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._series: dict[tuple[str, str], _Series] = {}
        self.registry.register(_HttpCollector(self._series))

    def watch_audit(self, recorder: Any) -> None:
        """Export the audit recorder's queue depth, drops and writes."""
        self.registry.register(_AuditQueueCollector(recorder))

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self._count(self._series.get((route, method)), (route, method), status, seconds)

    def observe_scope(self, scope: Scope, status: int, seconds: float) -> None:
        """Counts one answered HTTP request (by route template, known method, status)."""
        method = scope["method"]
        path = getattr(scope.get("route"), "path", None)  # route_template(), inlined: hot path
        key = (
            path if isinstance(path, str) else UNMATCHED_ROUTE,
            method if method in _KNOWN_METHODS else "OTHER",
        )
        series = self._series.get(key)
        if series is None:  # the body of _count, inlined: one call per request, not two
            series = self._series[key] = _Series()
        statuses = series.statuses
        if status in statuses:
            statuses[status] += 1
        else:
            statuses[status] = 1
            series.status_created[status] = time.time()
        series.buckets[bisect.bisect_left(_BUCKET_BOUNDS, seconds)] += 1
        series.sum += seconds

    def _count(
        self, series: _Series | None, key: tuple[str, str], status: int, seconds: float
    ) -> None:
        if series is None:
            series = self._series[key] = _Series()
        statuses = series.statuses
        if status in statuses:
            statuses[status] += 1
        else:
            statuses[status] = 1
            series.status_created[status] = time.time()
        # The first bound >= seconds: Prometheus buckets are "less than or equal" (le).
        series.buckets[bisect.bisect_left(_BUCKET_BOUNDS, seconds)] += 1
        series.sum += seconds


def observe_request(metrics: Metrics, scope: Scope, status: int, seconds: float) -> None:
    """Counts one answered HTTP request (by route template, known method, status)."""
    metrics.observe_scope(scope, status, seconds)


def route_template(scope: Scope) -> str:
    """The matched route's path template, or a fixed placeholder (bounded label values)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


class MetricsMiddleware:
    """Counts every HTTP request and its latency by route template, method and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self._next = next_app(app)
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._next(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        def send_wrapper(message: Message) -> Awaitable[None]:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            return send(message)

        try:
            await self._next(scope, receive, send_wrapper)
        finally:
            observe_request(self.metrics, scope, status, time.perf_counter() - start)
