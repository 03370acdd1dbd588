"""The immutable message value that receivers get as ``message=``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

#: The CloudEvents (Kafka binding) header naming the event type; ``event_signal`` routes on it.
EVENT_TYPE_HEADER = "ce_type"


#: Headers as a consumed message carries them: ``(name, value)`` pairs in Kafka's order, repeats kept.
Headers = tuple[tuple[str, bytes | None], ...]


def headers_of(raw: Any) -> Headers:
    """
    The headers of a consumed confluent-kafka message, as :data:`Headers`.

    A consumer gets a list of ``(str, bytes | None)`` pairs, or None when there are none.
    confluent-kafka types ``headers()`` with the producer's wider shape (a dict, str values),
    so anything else is normalised here rather than trusted: str values become UTF-8 bytes.
    """
    found = raw.headers()
    if not found:
        return ()
    pairs = found.items() if isinstance(found, dict) else found
    return tuple((name, value.encode("utf-8") if isinstance(value, str) else value) for name, value in pairs)


def coordinates(topic: str | None, partition: int | None, offset: int | None) -> str:
    """
    ``topic[partition]@offset``: how every log line and error names a message, never by its payload.

    Takes confluent-kafka's optional values as they come (a message it built without them shows
    ``None``), so callers need not check them only to say which message they mean.
    """
    return f"{topic}[{partition}]@{offset}"


@dataclass(frozen=True, slots=True)
class Message:
    """
    One Kafka message as receivers see it.

    ``value`` and ``key`` are already deserialized. ``headers`` keeps Kafka's order and any
    repeated names, as ``(name, bytes)`` pairs. ``timestamp`` is an aware UTC datetime, or
    None when the producer set none. ``event_type`` is the ``ce_type`` header, decoded.
    ``topic`` is the Kafka topic, with any TOPIC_PREFIX.
    """

    topic: str
    partition: int
    offset: int
    # Payloads may hold personal data: repr() shows coordinates only, as str() does.
    key: Any = field(repr=False)
    value: Any = field(repr=False)
    headers: Headers = field(repr=False)
    timestamp: datetime | None
    event_type: str | None

    def header(self, name: str) -> bytes | None:
        """Return the last value of header ``name``, or None when absent."""
        for header_name, value in reversed(self.headers):
            if header_name == name:
                return value
        return None

    def __str__(self) -> str:
        """Name the message by its coordinates, never by its payload (which may hold personal data)."""
        return coordinates(self.topic, self.partition, self.offset)


def to_datetime(timestamp: tuple[int, int] | None) -> datetime | None:
    """Convert confluent-kafka's ``(type, milliseconds)`` timestamp to an aware datetime."""
    # Type 0 is TIMESTAMP_NOT_AVAILABLE.
    if not timestamp or timestamp[0] == 0:
        return None
    return datetime.fromtimestamp(timestamp[1] / 1000, tz=UTC)


def decode_event_type(headers: Headers) -> str | None:
    """Return the last ``ce_type`` header decoded, or None when absent, empty or not UTF-8."""
    for name, value in reversed(headers):
        if name == EVENT_TYPE_HEADER:
            if value is None:
                return None
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                return None
    return None
