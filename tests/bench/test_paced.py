"""The paced client's schedule and pairing (bench.audit.paced)."""

from __future__ import annotations

from collections import Counter

from bench.audit.paced import Phase, interleaved_order

PATHS = ("/bench", "/bench-audit")


def test_interleaved_order_is_balanced_in_every_pair_and_seeded() -> None:
    order = interleaved_order(1001, PATHS, seed=4)
    assert len(order) == 1000
    assert all(set(order[j : j + 2]) == set(PATHS) for j in range(0, 1000, 2))
    firsts = Counter(order[0::2])
    assert 200 < firsts["/bench"] < 300  # random order within pairs, not a fixed alternation
    assert interleaved_order(1001, PATHS, seed=4) == order
    assert interleaved_order(1001, PATHS, seed=5) != order


def test_pairs_drop_a_pair_whose_other_request_failed() -> None:
    phase = Phase(
        paths=["/bench", "/bench-audit", "/bench-audit", "/bench", "/bench", "/bench-audit"],
        seconds=[1.0, 2.0, 4.0, 3.0, 5.0, 6.0],
        status=[200, 200, 200, 200, 200, 503],
    )
    assert phase.pairs("/bench", "/bench-audit") == [(1.0, 2.0), (3.0, 4.0)]
    assert phase.latencies("/bench") == [1.0, 3.0, 5.0]
    assert phase.latencies("/bench-audit") == [2.0, 4.0]
    assert phase.failed == 1
