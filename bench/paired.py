"""Statistics for two latency samples taken side by side, request by request.

When a load alternates two requests in pairs (the two members of a pair a few milliseconds
apart, so they see the same machine state), the per-pair difference cancels what drifts between
pairs: CPU frequency, other processes, cache and allocator state. Two estimates of the added
latency, neither trimming any sample:

- :func:`median_interval`: the median of the per-pair differences, with the distribution-free
  interval of the sign test (two order statistics chosen from Binomial(n, 1/2)); its coverage is
  at least the confidence asked for, whatever the differences' distribution;
- :func:`bootstrap_ratio`: the ratio of the two medians with a paired percentile bootstrap
  (pairs are resampled together, so the pairing is kept).

Percentiles (:func:`percentile`) interpolate linearly between order statistics.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

CONFIDENCE = 0.95
RESAMPLES = 2000


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its interval (``low <= high``; the point need not be centred)."""

    value: float
    low: float
    high: float


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, interpolating between order statistics.

    Raises ``ValueError`` on an empty sample or ``q`` outside [0, 100].
    """
    if not values:
        raise ValueError("no values")
    if not 0 <= q <= 100:
        raise ValueError("q must be in [0, 100]")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def sign_test_rank(n: int, confidence: float = CONFIDENCE) -> int:
    """The largest ``k`` (1-based) such that ``[x_(k), x_(n+1-k)]`` covers the median of a
    continuous distribution with probability at least ``confidence``.

    ``P(x_(k) <= median <= x_(n+1-k)) = 1 - 2 P(B <= k - 1)`` with ``B ~ Binomial(n, 1/2)``.
    Raises ``ValueError`` when even ``[x_(1), x_(n)]`` is not wide enough (``n < 6`` at 95 %).
    """
    if not 0 < confidence < 1:
        raise ValueError("confidence must be in (0, 1)")
    tail = (1 - confidence) / 2
    total = 1 << n  # 2**n in exact integers: no underflow for thousands of samples
    term, cumulative, k = 1, 1, 0  # cumulative = sum(comb(n, i) for i <= k)
    while cumulative / total <= tail:
        k += 1
        term = term * (n - k + 1) // k
        cumulative += term
    if k == 0:
        raise ValueError(f"{n} samples are too few for a {confidence:.0%} interval")
    return k


def median_interval(differences: Sequence[float], confidence: float = CONFIDENCE) -> Estimate:
    """The median of ``differences`` and its sign-test interval (see :func:`sign_test_rank`)."""
    ordered = sorted(differences)
    k = sign_test_rank(len(ordered), confidence)
    return Estimate(statistics.median(ordered), ordered[k - 1], ordered[len(ordered) - k])


def bootstrap_ratio(
    base: Sequence[float],
    other: Sequence[float],
    *,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> Estimate:
    """``median(other) / median(base)`` with a paired percentile-bootstrap interval.

    ``base[i]`` and ``other[i]`` are one pair. Seeded, so a run's figures can be reproduced.
    Raises ``ValueError`` if the samples differ in length or are empty.
    """
    if len(base) != len(other) or not base:
        raise ValueError("base and other must be non-empty pairs")
    rng = random.Random(seed)
    indices = range(len(base))
    ratios = []
    for _ in range(resamples):
        chosen = rng.choices(indices, k=len(base))
        ratios.append(
            statistics.median(other[i] for i in chosen) / statistics.median(base[i] for i in chosen)
        )
    tail = (1 - confidence) / 2 * 100
    return Estimate(
        statistics.median(other) / statistics.median(base),
        percentile(ratios, tail),
        percentile(ratios, 100 - tail),
    )
