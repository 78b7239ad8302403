"""GCRA against an injected clock: exact allow/deny sequences, burst and refill."""

from __future__ import annotations

import pytest

from bastion.protections.ratelimit.gcra import (
    MAX_TOLERANCE_NS,
    NS_PER_SECOND,
    Decision,
    Rate,
    evaluate,
    untaken,
)


class Bucket:
    """One key's TAT, driven by a clock the test moves by hand."""

    def __init__(self, rate: Rate) -> None:
        self.rate = rate
        self.now = 1_000 * NS_PER_SECOND
        self.tat: int | None = None

    def advance(self, seconds: float) -> None:
        self.now += round(seconds * NS_PER_SECOND)

    def hit(self, cost: int = 1) -> Decision:
        decision, self.tat = evaluate(self.tat, self.now, self.rate, cost)
        return decision

    def pattern(self, n: int) -> str:
        return "".join("A" if self.hit().allowed else "D" for _ in range(n))


def test_burst_then_deny_with_exact_timings() -> None:
    bucket = Bucket(Rate.per(3, 3.0))  # 1 per second, bursts of 3
    assert bucket.hit() == Decision(True, 3, 2, 1.0, 0.0)
    assert bucket.hit() == Decision(True, 3, 1, 2.0, 0.0)
    assert bucket.hit() == Decision(True, 3, 0, 3.0, 0.0)
    assert bucket.hit() == Decision(False, 3, 0, 3.0, 1.0)
    assert bucket.hit() == Decision(False, 3, 0, 3.0, 1.0)


def test_refill_one_unit_per_interval() -> None:
    bucket = Bucket(Rate.per(3, 3.0))
    assert bucket.pattern(4) == "AAAD"
    bucket.advance(0.25)
    assert bucket.hit() == Decision(False, 3, 0, 2.75, 0.75)
    bucket.advance(0.75)
    assert bucket.hit() == Decision(True, 3, 0, 3.0, 0.0)
    assert bucket.pattern(1) == "D"
    bucket.advance(2.0)
    assert bucket.pattern(3) == "AAD"


def test_idle_refills_to_the_burst_and_no_further() -> None:
    bucket = Bucket(Rate.per(5, 10.0))
    assert bucket.pattern(6) == "AAAAAD"
    bucket.advance(3600)
    assert bucket.pattern(6) == "AAAAAD"


def test_burst_smaller_than_limit_spaces_requests() -> None:
    bucket = Bucket(Rate.per(10, 10.0, burst=2))  # 1 per second, at most 2 at once
    assert bucket.pattern(3) == "AAD"
    assert bucket.hit().retry_after == 1.0
    bucket.advance(1.0)
    assert bucket.pattern(2) == "AD"


def test_burst_larger_than_limit() -> None:
    bucket = Bucket(Rate.per(1, 60.0, burst=5))
    assert bucket.pattern(6) == "AAAAAD"
    bucket.advance(59.999)
    assert bucket.pattern(1) == "D"
    bucket.advance(0.001)
    assert bucket.pattern(2) == "AD"


def test_steady_rate_at_the_limit_is_always_allowed() -> None:
    bucket = Bucket(Rate.per(10, 1.0, burst=1))
    for _ in range(100):
        assert bucket.hit().allowed
        bucket.advance(0.1)


def test_cost_takes_several_units() -> None:
    bucket = Bucket(Rate.per(10, 10.0))
    assert bucket.hit(cost=7) == Decision(True, 10, 3, 7.0, 0.0)
    refused = bucket.hit(cost=4)
    assert refused == Decision(False, 10, 0, 7.0, 1.0)
    assert bucket.hit(cost=3).remaining == 0


def test_a_refused_request_consumes_nothing() -> None:
    bucket = Bucket(Rate.per(2, 2.0))
    assert bucket.pattern(2) == "AA"
    tat = bucket.tat
    assert bucket.pattern(50) == "D" * 50
    assert bucket.tat == tat


def test_cost_above_the_burst_is_never_allowed() -> None:
    bucket = Bucket(Rate.per(3, 3.0))
    assert not bucket.hit(cost=4).allowed
    bucket.advance(3600)
    assert not bucket.hit(cost=4).allowed


def test_no_refill_budget() -> None:
    year = 365 * 86_400.0
    bucket = Bucket(Rate.per(100, year))
    assert bucket.pattern(101) == "A" * 100 + "D"
    bucket.advance(60)
    assert bucket.pattern(1) == "D"


def test_fractional_intervals_stay_exact() -> None:
    bucket = Bucket(Rate.per(3, 1.0))  # 333,333 us: rounded down to whole microseconds
    assert bucket.rate.interval_ns == 333_333_000
    assert bucket.pattern(4) == "AAAD"
    bucket.advance(0.333333)
    assert bucket.pattern(2) == "AD"


@pytest.mark.parametrize(
    ("limit", "period", "burst"), [(0, 1.0, 1), (1, 0.0, 1), (1, -1.0, 1), (1, 1.0, 0)]
)
def test_invalid_rates_are_refused(limit: int, period: float, burst: int) -> None:
    with pytest.raises(ValueError, match="a rate needs"):
        Rate(limit=limit, period=period, burst=burst)


def test_burst_window_is_bounded() -> None:
    too_long = MAX_TOLERANCE_NS / NS_PER_SECOND + 1
    with pytest.raises(ValueError, match="ten years"):
        Rate.per(1, too_long)


def test_cost_must_be_positive() -> None:
    with pytest.raises(ValueError, match="cost"):
        evaluate(None, 0, Rate.per(1, 1.0), 0)


def test_untaken_reports_the_bucket_before_the_request() -> None:
    bucket = Bucket(Rate.per(3, 3.0))
    taken = bucket.hit()
    assert untaken(taken, bucket.rate) == Decision(True, 3, 3, 0.0, 0.0)
    refused = Decision(False, 3, 0, 3.0, 1.0)
    assert untaken(refused, bucket.rate) is refused
