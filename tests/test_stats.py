"""The one percentile formula: nearest rank, a value that occurred."""

import math

from voicebot.stats import percentile


def test_nearest_rank_percentile() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert percentile(values, 0.5) == 3.0
    assert percentile(values, 0.99) == 5.0  # of five samples, the slowest
    assert percentile(values, 0.0) == 1.0
    assert percentile(range(1, 101), 0.95) == 96


def test_no_values() -> None:
    assert percentile([], 0.5) == 0.0
    assert math.isnan(percentile([], 0.5, empty=float("nan")))
