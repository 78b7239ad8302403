"""Metrics: the HTTP series equal what prometheus_client's Counter and Histogram would export."""

from __future__ import annotations

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from bastion.ops.metrics import UNMATCHED_ROUTE, Metrics

OBSERVATIONS = [
    ("/bench", "GET", 200, 0.0004),
    ("/bench", "GET", 200, 0.001),  # exactly on a bound: counted in that bucket ("le")
    ("/bench", "GET", 429, 7.0),  # past the last bound: only in +Inf
    ("/v1/sessions/{id}", "DELETE", 204, 0.02),
    ("<unmatched>", "OTHER", 404, 0.3),
]
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def reference() -> CollectorRegistry:
    registry = CollectorRegistry()
    requests = Counter(
        "bastion_http_requests",
        "HTTP requests by route template, method and status.",
        ["route", "method", "status"],
        registry=registry,
    )
    latency = Histogram(
        "bastion_http_request_duration_seconds",
        "HTTP request latency by route template and method.",
        ["route", "method"],
        buckets=BUCKETS,
        registry=registry,
    )
    for route, method, status, seconds in OBSERVATIONS:
        requests.labels(route, method, str(status)).inc()
        latency.labels(route, method).observe(seconds)
    return registry


def samples(registry: CollectorRegistry) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    """Every sample but the ``_created`` timestamps (they differ by construction)."""
    return {
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for family in registry.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    }


def created(registry: CollectorRegistry) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    return {
        (s.name, tuple(sorted(s.labels.items())))
        for family in registry.collect()
        for s in family.samples
        if s.name.endswith("_created")
    }


def observed() -> Metrics:
    metrics = Metrics()
    for observation in OBSERVATIONS:
        metrics.observe(*observation)
    return metrics


def test_same_series_as_prometheus_client() -> None:
    metrics = observed()
    assert samples(metrics.registry) == samples(reference())
    assert created(metrics.registry) == created(reference())
    assert "# TYPE bastion_http_request_duration_seconds histogram" in (
        generate_latest(metrics.registry).decode()
    )


def test_created_series_follow_prometheus_client_switch() -> None:
    prometheus_client.disable_created_metrics()
    try:
        assert created(observed().registry) == set()
        assert created(reference()) == set()
    finally:
        prometheus_client.enable_created_metrics()


def test_names_are_reserved_in_the_registry() -> None:
    """A second collector of the same series is refused, as with prometheus_client's own."""
    metrics = Metrics()
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        Counter("bastion_http_requests", "dup", registry=metrics.registry)


class _Route:
    def __init__(self, path: str) -> None:
        self.path = path


def test_observe_scope_counts_as_observe() -> None:
    # The HTTP core's one-call path: same series as observe() with the route template and
    # method it reads from the scope (unknown methods as OTHER, no route as <unmatched>).
    by_scope = Metrics()
    for route, method, status, seconds in OBSERVATIONS:
        by_scope.observe_scope({"method": method, "route": _Route(route)}, status, seconds)
    assert samples(by_scope.registry) == samples(observed().registry)
    by_scope.observe_scope({"method": "BREW"}, 404, 0.002)
    direct = observed()
    direct.observe(UNMATCHED_ROUTE, "OTHER", 404, 0.002)
    assert samples(by_scope.registry) == samples(direct.registry)
