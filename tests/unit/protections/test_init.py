"""The public API of the rate limiting library, as the SDK re-exports it."""

from __future__ import annotations

from bastion.protections import ratelimit


def test_all_is_complete() -> None:
    # The order is ruff's RUF022 (constants, classes, functions), checked by `ruff check`.
    for name in ratelimit.__all__:
        assert hasattr(ratelimit, name), name
    public = {
        name
        for name, value in vars(ratelimit).items()
        if not name.startswith("_")
        and getattr(value, "__module__", "").startswith(ratelimit.__name__)
    }
    assert public <= set(ratelimit.__all__)


def test_middleware_and_dependency_are_importable() -> None:
    from bastion.protections.ratelimit import (  # noqa: PLC0415
        ConcurrencyLimitMiddleware,
        RateLimitMiddleware,
        rate_limit,
    )

    assert callable(rate_limit)
    assert RateLimitMiddleware.__name__ == "RateLimitMiddleware"
    assert ConcurrencyLimitMiddleware.__name__ == "ConcurrencyLimitMiddleware"
