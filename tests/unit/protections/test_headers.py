"""The IETF RateLimit header fields and Retry-After, value for value."""

from __future__ import annotations

from bastion.protections.ratelimit import headers
from bastion.protections.ratelimit.gcra import Decision
from bastion.protections.ratelimit.policies import Policy

LOGIN = Policy.per("login", 10, 60)
API = Policy.per("api-ip", 600, 60)


def test_allowed_request() -> None:
    results = [(LOGIN, Decision(True, 10, 7, 18.2, 0.0)), (API, Decision(True, 600, 599, 0.1, 0.0))]
    assert headers.fields(results, refused=False) == [
        (b"ratelimit-policy", b'"login";q=10;w=60, "api-ip";q=600;w=60'),
        (b"ratelimit", b'"login";r=7;t=19, "api-ip";r=599;t=1'),
    ]


def test_refused_request_announces_the_longest_wait() -> None:
    results = [
        (LOGIN, Decision(False, 10, 0, 60.0, 5.2)),
        (API, Decision(False, 600, 0, 60.0, 0.1)),
    ]
    assert headers.fields(results, refused=True) == [
        (b"ratelimit-policy", b'"login";q=10;w=60, "api-ip";q=600;w=60'),
        (b"ratelimit", b'"login";r=0;t=6, "api-ip";r=0;t=1'),
        (b"retry-after", b"6"),
    ]


def test_retry_after_is_never_zero() -> None:
    assert headers.retry_after([(LOGIN, Decision(False, 10, 0, 1.0, 0.000_1))]) == 1
    assert headers.retry_after([]) == 1


def test_no_results_no_headers() -> None:
    assert headers.fields([], refused=False) == []
