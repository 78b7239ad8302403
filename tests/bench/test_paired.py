"""The paired statistics of the HTTP overhead benchmark (bench.paired)."""

from __future__ import annotations

import math
import random

import pytest
from bench.paired import bootstrap_ratio, median_interval, percentile, sign_test_rank


def _coverage(n: int, k: int) -> float:
    """P(x_(k) <= median <= x_(n+1-k)) for n draws of a continuous distribution."""
    return 1 - 2 * sum(math.comb(n, i) for i in range(k)) / (1 << n)


@pytest.mark.parametrize("n", [6, 7, 10, 25, 100, 101, 800, 2400])
def test_sign_test_rank_is_the_narrowest_interval_with_95_percent_coverage(n: int) -> None:
    k = sign_test_rank(n)
    assert _coverage(n, k) >= 0.95
    assert _coverage(n, k + 1) < 0.95


def test_sign_test_rank_matches_the_published_table() -> None:
    # The textbook 95 % interval for the median of 100 values: the 40th to the 61st.
    assert sign_test_rank(100) == 40
    assert sign_test_rank(6) == 1


def test_too_few_samples_for_an_interval_raise() -> None:
    with pytest.raises(ValueError, match="too few"):
        sign_test_rank(5)


def test_median_interval_takes_the_order_statistics() -> None:
    values = list(range(100, 0, -1))  # unsorted on purpose
    estimate = median_interval(values)
    assert (estimate.value, estimate.low, estimate.high) == (50.5, 40, 61)


def test_median_interval_covers_a_skewed_median_about_95_percent_of_the_time() -> None:
    rng = random.Random(7)  # noqa: S311 - seeded test data, not security
    true_median = math.log(2)  # of Exp(1): skewed, like latency differences' tails
    trials = 2000
    covered = 0
    for _ in range(trials):
        estimate = median_interval([rng.expovariate(1) for _ in range(60)])
        covered += estimate.low <= true_median <= estimate.high
    # Exact coverage for n = 60 is 0.9739; 2000 trials put the observed rate within +-0.01.
    assert 0.955 <= covered / trials <= 0.99


def test_paired_bootstrap_keeps_the_pairs() -> None:
    # Bimodal baselines (the machine states that made round-by-round figures unusable) and a
    # constant 3 % on top in each pair: resampling pairs together sees only the 3 %.
    rng = random.Random(3)  # noqa: S311 - seeded test data, not security
    base = [rng.choice((0.25e-3, 0.9e-3)) * rng.uniform(0.95, 1.05) for _ in range(501)]
    ratio = bootstrap_ratio(base, [b * 1.03 for b in base], resamples=300)
    assert ratio.value == pytest.approx(1.03)
    assert ratio.low == pytest.approx(1.03)
    assert ratio.high == pytest.approx(1.03)


def test_paired_bootstrap_interval_contains_a_noisy_ratio() -> None:
    rng = random.Random(5)  # noqa: S311 - seeded test data, not security
    base = [rng.uniform(0.2e-3, 1e-3) for _ in range(400)]
    other = [b * 1.1 + rng.gauss(0, 20e-6) for b in base]
    ratio = bootstrap_ratio(base, other, resamples=500)
    assert ratio.low < ratio.value < ratio.high
    assert ratio.low < 1.1 < ratio.high
    assert ratio.high - ratio.low < 0.05
    # Seeded: the same figures twice.
    assert bootstrap_ratio(base, other, resamples=500) == ratio


def test_paired_bootstrap_refuses_unpaired_samples() -> None:
    with pytest.raises(ValueError, match="pairs"):
        bootstrap_ratio([1.0, 2.0], [1.0])


def test_percentile_interpolates_between_order_statistics() -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert percentile(list(map(float, range(11))), 90) == 9.0
    assert percentile([1.0, 2.0], 0) == 1.0
    assert percentile([1.0, 2.0], 100) == 2.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
