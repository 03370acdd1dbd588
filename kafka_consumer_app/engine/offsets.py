"""
One-time offset resets: replay a topic from its beginning or from a point in time.

``consume_events --from-beginning`` or ``--offset-time`` rewinds the group once, when
partitions are first assigned, commits the new positions (so the reset survives a crash
before the first message is handled), then consumes normally. ``--reset-only`` commits the
new positions for every partition and exits; the group must have no active member then,
as with Kafka's own ``kafka-consumer-groups --reset-offsets``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import TopicPartition

from kafka_consumer_app.exceptions import ConfigurationError


@dataclass(frozen=True)
class OffsetReset:
    """Where to rewind to: the beginning of each partition, or the first message at or after ``when``."""

    when: datetime | None = None

    @property
    def from_beginning(self) -> bool:
        """True for --from-beginning."""
        return self.when is None

    def describe(self) -> str:
        """How logs name this reset."""
        return "the beginning" if self.when is None else self.when.isoformat()


def parse_offset_time(text: str) -> datetime:
    """Parse an ISO 8601 time; a time without a zone is taken as UTC."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError as error:
        raise ConfigurationError(
            f"--offset-time {text!r} is not an ISO 8601 time; write e.g. 2026-11-27T09:30:00Z"
        ) from error
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def reset_positions(
    client: Any, topic: str, partitions: Sequence[int], reset: OffsetReset, timeout: float = 10.0
) -> list[TopicPartition]:
    """
    The offsets each partition restarts from after ``reset``.

    From the beginning: the low watermark. From a time: the first offset whose timestamp is
    at or after it, or the end of the partition when no message is that recent.
    """
    if reset.when is None:
        return [
            TopicPartition(topic, p, client.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[0])
            for p in partitions
        ]
    millis = int(reset.when.timestamp() * 1000)
    found = client.offsets_for_times([TopicPartition(topic, p, millis) for p in partitions], timeout=timeout)
    positions = []
    for tp in found:
        offset = tp.offset
        if offset < 0:  # no message at or after that time: start at the end
            offset = client.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=timeout)[1]
        positions.append(TopicPartition(topic, tp.partition, offset))
    return positions
