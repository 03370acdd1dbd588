"""
Reading a dead-letter topic for the operator console: the parked messages, newest first, filtered.

:func:`scan` reads, in each partition of a dead-letter topic, at most :data:`SCAN_LIMIT` of the
newest messages (from the first one at or after the filter's ``since``, when it has one) with a
:class:`~kafka_consumer_app.operations.peek.TopicReader`, which assigns and seeks and never joins
or commits a group. :func:`fetch` reads chosen offsets. Each message becomes a :class:`DeadLetter`
that exposes the ``dlt.*`` headers the engine wrote (engine/dead_letters.py). The cost and the
paging are docs/decisions/0012-replaying-from-the-admin.rst.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from confluent_kafka import Message as KafkaMessage

from kafka_consumer_app.engine.dead_letters import (
    HEADER_ATTEMPTS,
    HEADER_EXCEPTION_CLASS,
    HEADER_EXCEPTION_MESSAGE,
    HEADER_OFFSET,
    HEADER_PARTITION,
    HEADER_REASON,
    HEADER_RECEIVERS,
    HEADER_TOPIC,
)
from kafka_consumer_app.message import headers_of
from kafka_consumer_app.operations.peek import TopicReader
from kafka_consumer_app.settings.topics import TopicConfig

#: The most messages read from each partition for one page: older ones are not listed.
SCAN_LIMIT = 5000
#: Offsets of one partition closer than this are read as one range by :func:`fetch`.
_FETCH_GAP = 200


@dataclass(frozen=True)
class DeadLetter:
    """One parked message: where it is in the dead-letter topic, its content, and why it failed."""

    topic: str
    partition: int
    offset: int
    timestamp: int | None
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    raw: KafkaMessage = field(compare=False, repr=False)

    @classmethod
    def of(cls, raw: KafkaMessage) -> DeadLetter:
        """The dead letter of a consumed message."""
        kind, timestamp = raw.timestamp()
        key = raw.key()
        return cls(
            topic=raw.topic() or "",
            partition=raw.partition() or 0,
            offset=raw.offset() or 0,
            timestamp=int(timestamp) if kind else None,
            key=key.encode("utf-8") if isinstance(key, str) else key,
            value=raw.value(),
            headers=tuple(headers_of(raw)),
            raw=raw,
        )

    def header(self, name: str) -> str:
        """The value of header ``name`` as text ('' when missing)."""
        for found, value in self.headers:
            if found == name and value is not None:
                return value.decode("utf-8", "replace")
        return ""

    @property
    def position(self) -> str:
        """``partition:offset``: the letter's id in forms and URLs."""
        return f"{self.partition}:{self.offset}"

    @property
    def parked_at(self) -> datetime | None:
        """When it was parked (the dead-letter message's timestamp), in UTC."""
        return None if self.timestamp is None else datetime.fromtimestamp(self.timestamp / 1000, UTC)

    @property
    def reason(self) -> str:
        """Why it was parked: ``dlt.reason`` (receiver-failed, malformed...)."""
        return self.header(HEADER_REASON)

    @property
    def receivers(self) -> list[str]:
        """The dotted names of the receivers that failed (``dlt.receivers``)."""
        return [name for name in self.header(HEADER_RECEIVERS).split(",") if name]

    @property
    def original_topic(self) -> str:
        """The topic it failed on, where Replay sends it back (``dlt.original.topic``)."""
        return self.header(HEADER_TOPIC)

    @property
    def original_position(self) -> str:
        """``topic[partition]@offset`` where it failed."""
        return f"{self.original_topic}[{self.header(HEADER_PARTITION)}]@{self.header(HEADER_OFFSET)}"

    @property
    def failure(self) -> str:
        """The exception classes and the first one's message, on one line (what the engine keeps of the traceback)."""
        classes, message = self.header(HEADER_EXCEPTION_CLASS), self.header(HEADER_EXCEPTION_MESSAGE)
        return f"{classes}: {message}" if message else classes

    @property
    def attempts(self) -> str:
        """How many times it was tried (``dlt.attempts``)."""
        return self.header(HEADER_ATTEMPTS)


@dataclass(frozen=True)
class DeadLetterFilter:
    """Which dead letters to list: every field left empty matches all."""

    reason: str = ""
    receiver: str = ""
    original_topic: str = ""
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, letter: DeadLetter) -> bool:
        """Whether ``letter`` passes every field that is set (receiver: a part of a failed receiver's name)."""
        parked = letter.parked_at
        return (
            (not self.reason or letter.reason == self.reason)
            and (not self.receiver or any(self.receiver in name for name in letter.receivers))
            and (not self.original_topic or letter.original_topic == self.original_topic)
            and (self.since is None or (parked is not None and parked >= self.since))
            and (self.until is None or (parked is not None and parked <= self.until))
        )


@dataclass(frozen=True)
class Scan:
    """The dead letters a page may show: matching, newest first; and whether older ones were not read."""

    letters: tuple[DeadLetter, ...]
    read: int
    truncated: bool


def scan(config: TopicConfig, topic: str, wanted: DeadLetterFilter, limit: int = SCAN_LIMIT) -> Scan:
    """Read up to ``limit`` of the newest messages of each partition of ``topic``; keep those ``wanted``."""
    found: list[DeadLetter] = []
    read, truncated = 0, False
    with TopicReader(config, topic) as reader:
        for partition in reader.partitions():
            low, high = reader.watermarks(partition)
            start = max(low, high - limit)
            if wanted.since is not None:
                first = reader.offset_at(partition, int(wanted.since.timestamp() * 1000))
                start = max(start, high if first is None else first)
            truncated = truncated or (start > low and (wanted.since is None or start == high - limit))
            for raw in reader.read_range(partition, start, high):
                read += 1
                letter = DeadLetter.of(raw)
                if wanted.matches(letter):
                    found.append(letter)
    found.sort(key=lambda letter: (letter.timestamp or 0, letter.offset, letter.partition), reverse=True)
    return Scan(tuple(found), read, truncated)


def fetch(config: TopicConfig, topic: str, positions: Iterable[tuple[int, int]]) -> list[DeadLetter]:
    """The dead letters at ``(partition, offset)`` positions, in that order; those no longer retained are left out."""
    wanted = list(dict.fromkeys(positions))
    by_partition: dict[int, list[int]] = {}
    for partition, offset in sorted(wanted):
        by_partition.setdefault(partition, []).append(offset)
    found: dict[tuple[int, int], DeadLetter] = {}
    with TopicReader(config, topic) as reader:
        for partition, offsets in by_partition.items():
            for start, stop in _runs(offsets):
                for raw in reader.read_range(partition, start, stop):
                    found[(partition, raw.offset() or 0)] = DeadLetter.of(raw)
    return [found[position] for position in wanted if position in found]


def _runs(offsets: list[int]) -> list[tuple[int, int]]:
    """Sorted offsets as ranges ``[start, stop)``, a new one where the gap exceeds :data:`_FETCH_GAP`."""
    runs: list[tuple[int, int]] = []
    for offset in offsets:
        if runs and offset - runs[-1][1] < _FETCH_GAP:
            runs[-1] = (runs[-1][0], offset + 1)
        else:
            runs.append((offset, offset + 1))
    return runs
