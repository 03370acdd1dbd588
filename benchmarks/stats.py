"""Small statistics: the median with its range, and percentiles."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    """The median of repeated measurements, with their minimum and maximum."""

    median: float
    minimum: float
    maximum: float
    samples: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        """Summarize ``values`` (at least one)."""
        if not values:
            raise ValueError("cannot summarize no values")
        return cls(statistics.median(values), min(values), max(values), tuple(values))

    def format(self, fmt: str = "{:,.0f}", unit: str = "") -> str:
        """``median [min-max] unit``, or just ``value unit`` when there was one sample."""
        if len(self.samples) == 1:
            return fmt.format(self.median) + unit
        return f"{fmt.format(self.median)} [{fmt.format(self.minimum)}-{fmt.format(self.maximum)}]{unit}"


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (``fraction`` in 0..1) of ``values``: a value that was actually observed."""
    if not values:
        raise ValueError("cannot take a percentile of no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def rate(count: int, first_ns: int, last_ns: int, first_count: int = 1) -> float:
    """
    Messages per second between the first and the last handled message.

    ``count`` messages span ``count - 1`` intervals; the first message's own handling time is
    outside the window, and so is everything before it (startup, group join, first fetch). For a
    batch receiver, ``first_count`` is the first batch's size: those messages are outside the window.
    """
    if count - first_count < 1 or last_ns <= first_ns:
        raise ValueError(f"need at least two messages over a positive time to compute a rate (got {count})")
    return (count - first_count) / ((last_ns - first_ns) / 1e9)


def cpu_per_message_us(count: int, cpu_first_ns: int | None, cpu_last_ns: int | None, first_count: int = 1) -> float:
    """
    Microseconds of the process's CPU time per message, over the same window as :func:`rate`.

    The CPU time is the whole process's (every thread: librdkafka's fetching and committing
    count as much as the Python loop).
    """
    if count <= first_count or cpu_first_ns is None or cpu_last_ns is None:
        raise ValueError(f"need the CPU time at the first and the last of at least two messages (got {count})")
    return (cpu_last_ns - cpu_first_ns) / (count - first_count) / 1000
