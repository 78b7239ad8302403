"""Prometheus metrics: HTTP traffic by route template, and the audit queue.

Each app owns its :class:`~prometheus_client.CollectorRegistry` (no global state, so several
apps in one process, as in tests, don't collide). Paths are recorded by *route template*
(``/v1/sessions/{id}``), never the raw path: an attacker probing random URLs must not create
unbounded label values (memory exhaustion of the process and of the metrics backend).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED_ROUTE = "<unmatched>"

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


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


class Metrics:
    """The metrics of one Bastion app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "bastion_http_requests",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "bastion_http_request_duration_seconds",
            "HTTP request latency by route template and method.",
            ["route", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        # Children cached by label tuple: `.labels()` takes a lock and builds a key each call.
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._histograms: dict[tuple[str, str], Any] = {}

    def watch_audit(self, recorder: Any) -> None:
        """Export the audit recorder's queue depth, drops and writes."""
        self.registry.register(_AuditQueueCollector(recorder))

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self.requests.labels(route, method, str(status))
        counter.inc()
        hkey = (route, method)
        hist = self._histograms.get(hkey)
        if hist is None:
            hist = self._histograms[hkey] = self.latency.labels(route, method)
        hist.observe(seconds)


_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_template(scope: Scope) -> str:
    """The matched route's path template, or a fixed placeholder (bounded label values)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


class MetricsMiddleware:
    """Counts every HTTP request and its latency by route template, method and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            method = scope["method"]
            self.metrics.observe(
                route_template(scope),
                method if method in _KNOWN_METHODS else "OTHER",
                status,
                time.perf_counter() - start,
            )
