"""Inbound frame lag of phone streams, behind `GET /telephony/stats`."""

from __future__ import annotations


class LagHistogram:
    """Inbound frame lag of every frame since the last reset, in fixed memory: 0.5 ms buckets up
    to 250 ms, one overflow bucket, and the maximum."""

    RESOLUTION_MS = 0.5
    BUCKETS = 500

    def __init__(self) -> None:
        self.counts = [0] * (self.BUCKETS + 1)
        self.n = 0
        self.max_ms = 0.0

    def add(self, ms: float) -> None:
        i = int(ms / self.RESOLUTION_MS)
        self.counts[i if i < self.BUCKETS else self.BUCKETS] += 1
        self.n += 1
        if ms > self.max_ms:
            self.max_ms = ms

    def percentile(self, p: float) -> float | None:
        """Upper edge of the bucket holding the p-quantile (the maximum if it overflowed)."""
        if not self.n:
            return None
        rank, seen = p * self.n, 0
        for i, count in enumerate(self.counts):
            seen += count
            if seen >= rank and count:
                return self.max_ms if i == self.BUCKETS else (i + 1) * self.RESOLUTION_MS
        return self.max_ms

    def summary(self) -> dict[str, float | int | None]:
        return {
            "p50": self.percentile(0.5),
            "p99": self.percentile(0.99),
            "max": round(self.max_ms, 2),
            "n": self.n,
        }
