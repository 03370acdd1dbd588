"""The immutable message value that receivers get as ``message=``."""

from __future__ import annotations

from collections.abc import Callable
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


@dataclass(frozen=True, slots=True, eq=False)
class Message:
    """
    One Kafka message as receivers see it.

    ``value`` and ``key`` are already deserialized. ``headers`` keeps Kafka's order and any
    repeated names, as ``(name, bytes)`` pairs. ``timestamp`` is an aware UTC datetime, or
    None when the producer set none. ``event_type`` is the ``ce_type`` header, decoded.
    ``topic`` is the Kafka topic, with any TOPIC_PREFIX.

    A message the consumer hands to receivers decodes its key, headers, timestamp and event
    type on first read (see :class:`ConsumedMessage`); to the receiver it is the same value.
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

    def _fields(self) -> tuple[Any, ...]:
        return (
            self.topic,
            self.partition,
            self.offset,
            self.key,
            self.value,
            self.headers,
            self.timestamp,
            self.event_type,
        )

    def __eq__(self, other: object) -> bool:
        """Messages are equal when every field is, however each was built."""
        if not isinstance(other, Message):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        """The hash of the fields (so it raises TypeError for an unhashable value, such as a dict)."""
        return hash(self._fields())

    def __str__(self) -> str:
        """Name the message by its coordinates, never by its payload (which may hold personal data)."""
        return coordinates(self.topic, self.partition, self.offset)


class ConsumedMessage(Message):
    """
    The :class:`Message` the consumer builds: ``key``, ``headers``, ``timestamp`` and ``event_type``
    are decoded from the Kafka message on first read, once; most receivers never read them all.

    A key that cannot be decoded raises :class:`~kafka_consumer_app.exceptions.DeserializationError`
    where it is read, every time it is read; the consumer then treats the message as malformed, as
    it does a value that cannot be decoded. Built with the fields given (by ``dataclasses.replace``,
    or unpickled), it holds them as they are.
    """

    # A decoded field lives in its underscored slot, which stays empty until the first read.
    __slots__ = ("_decode_key", "_event_type", "_headers", "_key", "_raw", "_timestamp")

    _key: Any
    _headers: Headers
    _timestamp: datetime | None
    _event_type: str | None
    _raw: Any
    _decode_key: Callable[[Any, ConsumedMessage], Any]

    @classmethod
    def of(
        cls, raw: Any, location: tuple[str, int, int], value: Any, decode_key: Callable[[Any, ConsumedMessage], Any]
    ) -> ConsumedMessage:
        """
        The message of confluent-kafka's ``raw`` at ``location``, with its ``value`` decoded;
        ``decode_key(raw, message)`` decodes the key when a receiver first reads it.
        """
        message = object.__new__(cls)
        assign = object.__setattr__  # the fields are frozen to receivers, not to their maker
        assign(message, "topic", location[0])
        assign(message, "partition", location[1])
        assign(message, "offset", location[2])
        assign(message, "value", value)
        assign(message, "_raw", raw)
        assign(message, "_decode_key", decode_key)
        return message

    @property
    def key(self) -> Any:
        """The deserialized key, decoded on first read; raises DeserializationError for a malformed key."""
        try:
            return self._key
        except AttributeError:
            pass  # not read yet (decoded outside the handler, so that an error does not chain to this one)
        key = self._decode_key(self._raw, self)
        object.__setattr__(self, "_key", key)
        return key

    @key.setter
    def key(self, key: Any) -> None:
        object.__setattr__(self, "_key", key)

    @property
    def headers(self) -> Headers:
        """The headers, as :data:`Headers`, built on first read."""
        try:
            return self._headers
        except AttributeError:
            pass  # not read yet (decoded outside the handler, so that an error does not chain to this one)
        headers = headers_of(self._raw)
        object.__setattr__(self, "_headers", headers)
        return headers

    @headers.setter
    def headers(self, headers: Headers) -> None:
        object.__setattr__(self, "_headers", headers)

    @property
    def timestamp(self) -> datetime | None:
        """The timestamp, as an aware UTC datetime or None, converted on first read."""
        try:
            return self._timestamp
        except AttributeError:
            pass  # not read yet (decoded outside the handler, so that an error does not chain to this one)
        timestamp = to_datetime(self._raw.timestamp())
        object.__setattr__(self, "_timestamp", timestamp)
        return timestamp

    @timestamp.setter
    def timestamp(self, timestamp: datetime | None) -> None:
        object.__setattr__(self, "_timestamp", timestamp)

    @property
    def event_type(self) -> str | None:
        """The ``ce_type`` header, decoded on first read."""
        try:
            return self._event_type
        except AttributeError:
            pass  # not read yet (decoded outside the handler, so that an error does not chain to this one)
        event_type = decode_event_type(self.headers)
        object.__setattr__(self, "_event_type", event_type)
        return event_type

    @event_type.setter
    def event_type(self, event_type: str | None) -> None:
        object.__setattr__(self, "_event_type", event_type)


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
