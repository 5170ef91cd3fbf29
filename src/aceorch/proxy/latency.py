"""The proxy's delivery-delay histogram: time from an engine read to the viewer's completed write.

:class:`DelayHistogram` keeps fixed bucket counts, a sample count and a sum, never the samples themselves, so an
observation costs one bisection over a few dozen bounds and the memory is constant. Readers (``/ace/status``,
the Prometheus collector) only read :attr:`~DelayHistogram.buckets`, :attr:`~DelayHistogram.counts`,
:attr:`~DelayHistogram.count` and :attr:`~DelayHistogram.sum`; only :meth:`~DelayHistogram.observe` writes.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence

__all__ = ["DELAY_BUCKETS_S", "DelayHistogram", "quantile"]

#: Upper bounds of the buckets, in seconds: fine below 20 ms (where a keeping-up viewer is), coarse above.
DELAY_BUCKETS_S: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
    0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0,
)


def quantile(buckets: Sequence[float], counts: Sequence[int], q: float) -> float | None:
    """The ``q`` quantile (0..1) of a bucketed distribution, interpolated linearly inside its bucket.

    ``counts[i]`` holds the samples in ``(buckets[i-1], buckets[i]]`` (from 0 for the first); a last extra count
    holds those above the last bound, whose quantile is reported as the last bound. None without samples.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be within 0..1, got {q}")
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    running = 0
    for i, n in enumerate(counts):
        if n <= 0:
            continue
        if running + n >= rank:
            if i >= len(buckets):
                return float(buckets[-1])
            lower = float(buckets[i - 1]) if i > 0 else 0.0
            return lower + (float(buckets[i]) - lower) * max(0.0, rank - running) / n
        running += n
    return float(buckets[-1])


class DelayHistogram:
    """Delivery delays in fixed buckets: per-bucket counts (plus one overflow count), the sample count and sum."""

    __slots__ = ("_buckets", "_counts", "_count", "_sum")

    def __init__(self, buckets: Sequence[float] = DELAY_BUCKETS_S) -> None:
        bounds = tuple(float(b) for b in buckets)
        if not bounds or any(not math.isfinite(b) or b <= 0 for b in bounds) or list(bounds) != sorted(set(bounds)):
            raise ValueError("buckets must be finite, positive and strictly ascending")
        self._buckets = bounds
        self._counts = [0] * (len(bounds) + 1)
        self._count = 0
        self._sum = 0.0

    @property
    def buckets(self) -> tuple[float, ...]:
        """The buckets' upper bounds in seconds, ascending (no ``+Inf``: ``count`` is that bucket)."""
        return self._buckets

    @property
    def counts(self) -> tuple[int, ...]:
        """Samples per bucket, not cumulative; one more entry than :attr:`buckets`, for delays above the last."""
        return tuple(self._counts)

    @property
    def count(self) -> int:
        """How many delays were observed."""
        return self._count

    @property
    def sum(self) -> float:
        """The observed delays added up, in seconds."""
        return self._sum

    def observe(self, seconds: float) -> None:
        """Count one delay (a negative one, from a clock step, counts as 0)."""
        if seconds < 0.0:
            seconds = 0.0
        self._counts[bisect_left(self._buckets, seconds)] += 1
        self._count += 1
        self._sum += seconds

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (0..1) in seconds, interpolated inside its bucket; None before the first sample."""
        return quantile(self._buckets, self._counts, q)

    def quantile_ms(self, q: float) -> float | None:
        """The ``q`` quantile in milliseconds, rounded to 0.01 ms; None before the first sample."""
        value = self.quantile(q)
        return None if value is None else round(value * 1000, 2)
