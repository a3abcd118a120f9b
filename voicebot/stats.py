"""The one percentile formula behind `/health`, `/metrics`, the worker pool's stats and the
benchmarks, so a p99 means the same thing wherever it is printed."""

from __future__ import annotations

from collections.abc import Iterable


def percentile(values: Iterable[float], q: float, empty: float = 0.0) -> float:
    """Nearest-rank `q`-quantile (0..1) of `values`, or `empty` when there are none.

    Nearest-rank (a value that occurred, never an interpolation) keeps small samples honest: the
    p99 of 20 turns is the slowest turn.
    """
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else empty
